// Package evidence is the format of Kuzet's evidence packages and their
// offline verification.
//
// An evidence package is a ZIP file (every member stored, not compressed)
// holding:
//
//   - one MP4 file per camera (or several, when the camera's stream
//     parameters changed within the range): the recorded video remuxed into
//     fragmented MP4, never transcoded;
//   - README.txt: how to verify the package, for its recipient;
//   - manifest.json: what the package holds and where it came from (the
//     incident, the cameras and UTC ranges, each file's SHA-256 and size, the
//     source segments with their ingest-time SHA-256 and hash-chain values,
//     every gap with its reason, who exported it, why, when, and with which
//     software);
//   - manifest.sig: the Ed25519 signature of manifest.json's exact bytes,
//     base64-encoded on one line.
//
// The members appear in that order; manifest.json lists every member but
// itself and manifest.sig. Keys are PEM files: the signing key PKCS #8
// ("PRIVATE KEY"), the public key PKIX ("PUBLIC KEY"), so that standard
// tools (openssl, sha256sum) can check a package as well as Verify.
//
// It sits in the viewer's export path (Writer) and in `kuzet verify`
// (Verify), which runs offline: the package needs no database, no network
// and no Kuzet server to be checked.
//
// # Verification
//
// Verify reads the ZIP structure strictly: members must follow each other
// from the first byte, each local header must agree with its central
// directory record and data descriptor, the central directory and its end
// record must be the ones Writer produces, and nothing may follow them. It
// checks each member's CRC-32 (so accidental damage names the damaged
// member), the signature over manifest.json, and each listed member's size
// and SHA-256; a member that is not listed, or listed and missing, fails
// too. Every failure is an *Error naming the member (or the package as a
// whole for its structure).
//
// # Concurrency
//
// The package starts no goroutines. A Writer is used by one goroutine; it
// streams members and holds none of them in memory. Verify and ParseManifest
// are safe on untrusted input: they never panic, bound what they allocate,
// and read members in a streaming fashion.
package evidence
