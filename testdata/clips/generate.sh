#!/bin/sh
# Regenerates the clips the camera simulator loops. Run from this directory:
#   sh generate.sh
# Every clip: MPEG-TS, 10 s (the AAC clip 9.6 s), 25 fps, one IDR every 50 frames (2 s GOP, fixed:
# no scene-cut keyframes), no B-frames. The moving test pattern keeps frame
# sizes varying like a real scene.
set -eu

# 640x360 H.264 (Main profile), ~600 kbit/s.
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=10" \
  -c:v libx264 -profile:v main -preset medium -pix_fmt yuv420p \
  -b:v 600k -maxrate 600k -bufsize 1200k \
  -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
  -f mpegts h264_640x360.ts

# 1920x1080 H.264 (Main profile), ~4 Mbit/s.
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=10" \
  -c:v libx264 -profile:v main -preset fast -pix_fmt yuv420p \
  -b:v 4M -maxrate 4M -bufsize 8M \
  -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
  -f mpegts h264_1920x1080.ts

# 640x360 H.265 (Main profile), ~400 kbit/s.
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=10" \
  -c:v libx265 -profile:v main -preset fast -pix_fmt yuv420p \
  -b:v 400k -maxrate 400k -bufsize 800k \
  -x265-params "log-level=error:keyint=50:min-keyint=50:scenecut=0:bframes=0:open-gop=0:repeat-headers=1" \
  -f mpegts h265_640x360.ts

# 640x360 H.264 (Main profile) + AAC-LC 48 kHz mono 64 kbit/s (a 440 Hz tone
# with an 880 Hz beep every second). 9.6 s rather than 10 s: 9.6 s is 240 video
# frames and exactly 450 AAC frames of 1024 samples, so audio timestamps stay
# evenly spaced when the clip loops.
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=9.6" \
  -f lavfi -i "sine=frequency=440:beep_factor=2:sample_rate=48000:duration=9.6" \
  -c:v libx264 -profile:v main -preset medium -pix_fmt yuv420p \
  -b:v 600k -maxrate 600k -bufsize 1200k \
  -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
  -c:a aac -b:a 64k -ar 48000 -ac 1 \
  -f mpegts h264_aac_640x360.ts
