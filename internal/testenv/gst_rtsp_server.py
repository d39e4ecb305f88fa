"""A camera for tests, served by GStreamer's RTSP server (gst-rtsp-server).

The RTSP server, the RTP payloaders (rtph264pay, rtph265pay, rtpmp4gpay) and
the RTP session with its RTCP sender reports (rtpbin) are GStreamer's, from
Debian's gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-{base,good,bad};
this script only wires them to a clip. It demuxes an MPEG-TS clip (H.264 or
H.265 video, optional AAC audio) once, then plays it in a loop in real time
into live appsrc elements, one per stream, of a shared media: like a camera,
the stream runs whether or not anyone watches, and a client joins it where
it is. Timestamps run on across the loop point (the loop period is the
video's span plus one frame), so the RTP clock never jumps.

Usage:
    python3 gst_rtsp_server.py CLIP PATH PORT   serve CLIP at rtsp://127.0.0.1:PORT/PATH
                                                (PORT 0: any free port)
    python3 gst_rtsp_server.py --check          exit 0 when everything needed is installed

When serving, it prints the stream's URL on one line once it listens, and
exits when its standard input closes (so it never outlives the test that
started it) or on SIGTERM.
"""

import signal
import sys
import threading

# Element factories used, and the Debian package holding each.
ELEMENTS = {
    "filesrc": "libgstreamer1.0-0",
    "queue": "libgstreamer1.0-0",
    "tee": "libgstreamer1.0-0",
    "funnel": "libgstreamer1.0-0",
    "appsrc": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base",
    "tsdemux": "gstreamer1.0-plugins-bad",
    "h264parse": "gstreamer1.0-plugins-bad",
    "h265parse": "gstreamer1.0-plugins-bad",
    "aacparse": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "rtph265pay": "gstreamer1.0-plugins-good",
    "rtpmp4gpay": "gstreamer1.0-plugins-good",
    "rtpbin": "gstreamer1.0-plugins-good",
    "udpsrc": "gstreamer1.0-plugins-good",
    "multiudpsink": "gstreamer1.0-plugins-good",
}

# Per stream caps name: how the clip's elementary stream is parsed, and how
# the media packetizes it.
PARSERS = {
    "video/x-h264": "h264parse ! video/x-h264,stream-format=byte-stream,alignment=au",
    "video/x-h265": "h265parse ! video/x-h265,stream-format=byte-stream,alignment=au",
    "audio/mpeg": "aacparse ! audio/mpeg,mpegversion=4,stream-format=raw",
}
PAYLOADERS = {
    "video/x-h264": "rtph264pay pt=96",
    "video/x-h265": "rtph265pay pt=96",
    "audio/mpeg": "rtpmp4gpay pt=97",
}


def import_gst():
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    return GLib, Gst, GstRtspServer


def check():
    try:
        _, Gst, _ = import_gst()
    except (ImportError, ValueError) as e:
        sys.exit("GStreamer RTSP server bindings: %s" % e)
    missing = ["%s (%s)" % (e, p) for e, p in ELEMENTS.items() if Gst.ElementFactory.find(e) is None]
    if missing:
        sys.exit("missing GStreamer elements: " + ", ".join(missing))


def load(Gst, clip):
    """Demuxes the clip: a list of [caps name, caps, buffers], one per stream."""
    pipe = Gst.Pipeline.new("load")
    src = Gst.ElementFactory.make("filesrc")
    src.set_property("location", clip)
    demux = Gst.ElementFactory.make("tsdemux")
    pipe.add(src)
    pipe.add(demux)
    src.link(demux)
    streams = []

    def on_sample(sink, st):
        st[2].append(sink.emit("pull-sample").get_buffer())
        return Gst.FlowReturn.OK

    def on_pad(_, pad):
        name = pad.query_caps(None).get_structure(0).get_name()
        if name not in PARSERS:
            return
        i = len(streams)
        b = Gst.parse_bin_from_description(
            "queue ! %s ! appsink name=sink%d sync=false emit-signals=true" % (PARSERS[name], i), True)
        pipe.add(b)
        sink = b.get_by_name("sink%d" % i)
        st = [name, sink, []]
        streams.append(st)
        sink.connect("new-sample", on_sample, st)
        b.sync_state_with_parent()
        pad.link(b.get_static_pad("sink"))

    demux.connect("pad-added", on_pad)
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    out = [(n, s.get_static_pad("sink").get_current_caps(), bufs) for n, s, bufs in streams]
    pipe.set_state(Gst.State.NULL)
    if msg is None or msg.type != Gst.MessageType.EOS:
        sys.exit("cannot read %s: %s" % (clip, msg.parse_error() if msg else "timeout"))
    return out


def serve(clip, path, port):
    GLib, Gst, GstRtspServer = import_gst()
    streams = load(Gst, clip)
    video = [s for s in streams if s[0].startswith("video/")]
    if len(video) != 1 or len(video[0][2]) < 2:
        sys.exit("%s: want one video stream of two frames or more" % clip)
    vbufs = video[0][2]
    first = min(s[2][0].pts for s in streams if s[2])
    period = vbufs[-1].pts - vbufs[0].pts + (vbufs[-1].pts - vbufs[-2].pts)
    schedule = sorted(((b.pts - first, i, b) for i, s in enumerate(streams) for b in s[2]),
                      key=lambda e: (e[0], e[1]))

    lock = threading.Lock()
    targets = []  # the appsrc elements of the prepared media, one per stream
    stop = threading.Event()
    clock = Gst.SystemClock.obtain()  # the media pipeline's clock too

    def feed():
        start = clock.get_time()
        n = 0
        while True:
            for offset, i, buf in schedule:
                at = start + n * period + offset
                wait = at - clock.get_time()
                if stop.wait(max(wait, 0) / Gst.SECOND):
                    return
                with lock:
                    appsrc = targets[i] if targets else None
                if appsrc is None or appsrc.get_state(0)[1] != Gst.State.PLAYING:
                    continue
                pts = at - appsrc.get_base_time()
                if pts < 0:
                    continue
                out = buf.copy()
                out.pts, out.dts = pts, Gst.CLOCK_TIME_NONE
                appsrc.emit("push-buffer", out)
            n += 1

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( %s )" % " ".join(
        "appsrc name=src%d is-live=true format=time ! %s name=pay%d" % (i, PAYLOADERS[s[0]], i)
        for i, s in enumerate(streams)))
    factory.set_shared(True)

    def on_configure(_, media):
        el = media.get_element()
        srcs = []
        for i, s in enumerate(streams):
            a = el.get_by_name("src%d" % i)
            a.set_property("caps", s[1])
            srcs.append(a)
        with lock:
            targets[:] = srcs

        def on_unprepared(_):
            with lock:
                if targets == srcs:
                    targets.clear()

        media.connect("unprepared", on_unprepared)

    factory.connect("media-configure", on_configure)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit("cannot listen on 127.0.0.1:%s" % port)

    loop = GLib.MainLoop()

    def on_stdin(*_):
        if sys.stdin.buffer.read1(4096):
            return True
        loop.quit()
        return False

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, lambda: loop.quit() or False)
    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, on_stdin)
    feeder = threading.Thread(target=feed)
    feeder.start()
    print("rtsp://127.0.0.1:%d%s" % (server.get_bound_port(), path), flush=True)
    try:
        loop.run()
    finally:
        stop.set()
        feeder.join()


def main():
    if sys.argv[1:] == ["--check"]:
        check()
        return
    if len(sys.argv) != 4 or not sys.argv[2].startswith("/"):
        sys.exit("usage: %s CLIP /PATH PORT | --check" % sys.argv[0])
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))


main()
