// Package config loads Kuzet's one configuration file: YAML, with KUZET_*
// environment variables over it (KUZET_DATABASE_URL sets database.url).
//
// It sits outside the data flow: cmd/kuzet loads the configuration once at
// start and hands each component its part. Loading is strict: an unknown key,
// a value of the wrong type, a malformed duration, size or URL is refused with
// a FieldError that names the key and, for the file, the line. Nothing here
// starts goroutines or holds state.
package config
