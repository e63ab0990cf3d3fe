#!/usr/bin/python3
"""GStreamer's RTSP server (Debian: gir1.2-gst-rtsp-server-1.0, python3-gi,
gstreamer1.0-plugins-good/-bad), serving an MP4 file in real time to tests/rtsp_camera.rs.

  gst-rtsp-server.py PORT FILE [--codec h264|h265] [--user U --password P [--digest]]

A fresh pipeline per client (set_shared(False)), so each connection starts at the top of
the file. Prints "ready" once listening and "client" for each connection, on stdout.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

args = sys.argv[1:]
port, path = args[0], args[1]


def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default


codec = opt("--codec", "h264")
user, password = opt("--user"), opt("--password")
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={path} ! qtdemux ! {codec}parse ! rtp{codec}pay name=pay0 pt=96 config-interval=1 )"
)
factory.set_shared(False)
if user:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", user)
    if "--digest" in args:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    else:
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_role(user)
    perms.add_permission_for_role(user, "media.factory.access", True)
    perms.add_permission_for_role(user, "media.factory.construct", True)
    factory.set_permissions(perms)
server.get_mount_points().add_factory("/cam", factory)
server.connect("client-connected", lambda *_: print("client", flush=True))
if server.attach(None) == 0:
    sys.exit("cannot listen on port " + port)
print("ready", flush=True)
GLib.MainLoop().run()
