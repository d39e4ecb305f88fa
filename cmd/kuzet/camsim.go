package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kuzet/kuzet/internal/camsim"
)

// camsimCommand serves simulated RTSP cameras.
func camsimCommand() command {
	return command{
		name:  "camsim",
		usage: "[flags]",
		summary: `Serve simulated RTSP cameras (many in one process, with fault injection).

Serves rtsp://LISTEN/cam/1 .. /cam/N over RTSP/TCP. Each camera loops an
MPEG-TS clip (H.264 or H.265 without B-frames, optionally with AAC) in real
time: RTP sequence numbers and timestamps run on across loops, parameter sets
are in the SDP and before every key frame, RTCP sender reports precede every
key frame. Every video frame carries an SEI mark (camera number, frame
number, send time) that tests read back. Runs until SIGINT or SIGTERM.

Faults (--fault, repeatable) follow this syntax:
  ` + strings.ReplaceAll(camsim.FaultSyntax, "\n", "\n  ") + `

Examples:
  kuzet camsim --cameras 16
  kuzet camsim --cameras 300 --clip testdata/clips/h264_1920x1080.ts
  kuzet camsim --cameras 8 --camera-clip 5-8=testdata/clips/h265_640x360.ts \
    --username viewer --fault "stall cams=2 at=20s every=1m for=5s" \
    --fault "drop cams=3 at=30s for=15s" --fault "skew cams=4 at=1m offset=5s"`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			listen := fs.String("listen", "127.0.0.1:8554", "RTSP `address` to listen on (TCP); port 0 picks a free one")
			cameras := fs.Int("cameras", 16, "`number` of cameras, served at /cam/1 .. /cam/N")
			clip := fs.String("clip", "", "MPEG-TS clip `file` every camera loops\n(default "+camsim.DefaultClip+", looked up from the working directory upwards)")
			var cameraClips, faults camsimRepeated
			fs.Var(&cameraClips, "camera-clip", "`LIST=FILE`: cameras in LIST (e.g. 5-8 or 1,3) loop FILE instead; repeatable")
			user := fs.String("username", "", "require RTSP authentication (Basic and Digest) with this `user`")
			pass := fs.String("password", "", "`secret` for --username (default $KUZET_CAMSIM_PASSWORD); no ':'")
			fs.Var(&faults, "fault", "inject a fault: `SPEC` as described above; repeatable")
			srPeriod := fs.Duration("sr-period", 5*time.Second, "longest `interval` between RTCP sender reports")
			logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")

			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected arguments %q", args)
				}
				var level slog.Level
				if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
					return usageErrorf("--log-level: %v", err)
				}
				log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

				cfg := camsim.Config{
					Listen:             *listen,
					Cameras:            *cameras,
					Clip:               *clip,
					Username:           *user,
					Password:           *pass,
					SenderReportPeriod: *srPeriod,
				}
				if cfg.Password == "" {
					cfg.Password = os.Getenv("KUZET_CAMSIM_PASSWORD")
				}
				if cfg.Username == "" && cfg.Password != "" {
					return usageErrorf("a password needs --username")
				}
				if *cameras < 1 || *cameras > camsim.MaxCameras {
					return usageErrorf("--cameras %d: want 1..%d", *cameras, camsim.MaxCameras)
				}
				for _, cc := range cameraClips {
					list, file, ok := strings.Cut(cc, "=")
					if !ok || file == "" {
						return usageErrorf("--camera-clip %q: want LIST=FILE", cc)
					}
					ns, err := camsim.ParseCameraList(list)
					if err != nil || ns == nil {
						return usageErrorf("--camera-clip %q: want camera numbers before '='", cc)
					}
					if cfg.CameraClips == nil {
						cfg.CameraClips = map[int]string{}
					}
					for _, n := range ns {
						cfg.CameraClips[n] = file
					}
				}
				for _, spec := range faults {
					f, err := camsim.ParseFault(spec)
					if err != nil {
						return usageErrorf("--fault: %v", err)
					}
					cfg.Faults = append(cfg.Faults, f)
				}

				s, err := camsim.New(cfg, log)
				if err != nil {
					return err
				}
				return s.Run(ctx)
			}
		},
	}
}

// camsimRepeated is a repeatable string flag of camsim.
type camsimRepeated []string

func (l *camsimRepeated) String() string { return strings.Join(*l, "; ") }

func (l *camsimRepeated) Set(v string) error {
	*l = append(*l, v)
	return nil
}
