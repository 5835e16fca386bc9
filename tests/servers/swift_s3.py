#!/usr/bin/python3
"""swift_s3.py - a private S3 server for the tests and benchmarks.

OpenStack Swift (Debian's python3-swift) with its S3 layer (the s3api
middleware) and tempauth, all state under one directory, listening on
loopback only.  Nothing is installed and nothing outside DIR is touched.

    swift_s3.py start DIR    start (or restart on the state already in DIR);
                             prints KEY=VALUE lines once the server answers
    swift_s3.py stop DIR     stop it by its process id
    swift_s3.py status DIR   exit 0 when it is running

Environment: TESSERA_S3_LIFETIME (seconds; the server stops by itself),
TESSERA_S3_FSYNC=1 (servers fsync objects; default off), TESSERA_S3_PROXY_WORKERS, TESSERA_S3_OBJECT_WORKERS, TESSERA_S3_LOG_LEVEL.

Layout of DIR:
    etc/     swift.conf, rings, the four server configs, ports.json, creds.json
    srv/d1/  the one storage device (needs user extended attributes)
    run/     supervisor.pid, log.sock (the servers' syslog goes there)
    log/     swift.log (the supervisor writes what arrives on log.sock)

One supervisor process (a session and process-group leader) forks the proxy
(PROXY_WORKERS workers sharing one listening socket), account, container and
object servers.  The listening sockets are bound by the launcher before the
servers start, on ports picked by the kernel, so several servers can run at
once on one machine without racing for ports; a restart on the same DIR binds
the same ports again (the rings name them).

The S3 region is "auto" (as on Cloudflare R2): a request signed for another
region is refused, as is one signed with a wrong secret.
"""
import errno
import json
import os
import secrets
import select
import signal
import socket
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "auto"
BUCKET = "tessera-test"
ACCOUNT = "tessera"
USER = "tester"
PROXY_WORKERS = int(os.environ.get("TESSERA_S3_PROXY_WORKERS", "2"))
OBJECT_WORKERS = int(os.environ.get("TESSERA_S3_OBJECT_WORKERS", "2"))
LOG_LEVEL = os.environ.get("TESSERA_S3_LOG_LEVEL", "INFO")
# A server started by one test stops by itself after this many seconds, so a
# test that dies cannot leave it running (0: no limit).
LIFETIME = float(os.environ.get("TESSERA_S3_LIFETIME", "0"))
# The state is thrown away after a test run: the servers skip fsync unless
# TESSERA_S3_FSYNC=1 (an fsync per object costs ~10 ms on a busy disk and
# makes the 1,000-key tests slow for no benefit).
FSYNC = os.environ.get("TESSERA_S3_FSYNC", "0") == "1"
SERVERS = ("proxy", "account", "container", "object")


def die(msg):
    sys.stderr.write("swift_s3: %s\n" % msg)
    sys.exit(1)


def paths(d):
    return {
        "etc": os.path.join(d, "etc"),
        "srv": os.path.join(d, "srv"),
        "dev": os.path.join(d, "srv", "d1"),
        "run": os.path.join(d, "run"),
        "log": os.path.join(d, "log"),
        "pid": os.path.join(d, "run", "supervisor.pid"),
        "sock": os.path.join(d, "run", "log.sock"),
        "ports": os.path.join(d, "etc", "ports.json"),
        "creds": os.path.join(d, "etc", "creds.json"),
    }


def check_xattr(dev):
    """Swift keeps object metadata in user extended attributes."""
    probe = os.path.join(dev, ".xattr-probe")
    with open(probe, "wb"):
        pass
    try:
        os.setxattr(probe, "user.tessera.probe", b"1")
    except OSError as e:
        raise SystemExit(
            "swift_s3: %s does not support user extended attributes (%s); "
            "put the server directory on ext4/xfs/btrfs (e.g. TMPDIR=/var/tmp)"
            % (dev, e.strerror))
    finally:
        os.unlink(probe)


def bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError as e:
        die("cannot bind 127.0.0.1:%d: %s" % (port, e.strerror))
    s.listen(1024)
    return s


CONF_HEAD = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
swift_dir = {etc}
devices = {srv}
mount_check = false
disable_fallocate = true
log_address = {sock}
log_level = {level}
log_name = {name}
workers = 1
"""

PROXY_CONF = """
[pipeline:main]
pipeline = catch_errors gatekeeper proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:cache]
paste.filter_factory = swift_s3_cache:filter_factory

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:s3api]
use = egg:swift#s3api
location = {region}
# path-style requests only: no storage_domain
s3_acl = false
check_bucket_owner = false
max_bucket_listing = 1000
min_segment_size = 5242880

[filter:tempauth]
use = egg:swift#tempauth
user_{account}_{user} = {secret} .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo
"""

BACKEND_CONF = """
[pipeline:main]
pipeline = {name}-server

[app:{name}-server]
use = egg:swift#{name}
"""


def write_config(p, ports, secret):
    etc = p["etc"]
    with open(os.path.join(etc, "swift.conf"), "w") as f:
        f.write("[swift-hash]\nswift_hash_path_prefix = %s\n"
                "swift_hash_path_suffix = %s\n\n"
                "[storage-policy:0]\nname = gold\ndefault = yes\n"
                % (secrets.token_hex(8), secrets.token_hex(8)))
    for name in SERVERS:
        head = CONF_HEAD.format(port=ports[name], etc=etc, srv=p["srv"], sock=p["sock"],
                                level=LOG_LEVEL, name=name)
        if name == "proxy":
            body = PROXY_CONF.format(region=REGION, account=ACCOUNT, user=USER, secret=secret)
        else:
            body = BACKEND_CONF.format(name=name)
        with open(os.path.join(etc, name + "-server.conf"), "w") as f:
            f.write(head + body)


def build_rings(etc, ports):
    from swift.common.ring import RingBuilder
    for name in ("account", "container", "object"):
        b = RingBuilder(6, 1, 1)  # 64 partitions, one replica
        b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
                   "port": ports[name], "device": "d1", "weight": 100,
                   "replication_ip": "127.0.0.1", "replication_port": ports[name],
                   "meta": ""})
        b.rebalance(seed=1)
        b.get_ring().save(os.path.join(etc, name + ".ring.gz"))


def serve(name, etc, sock):
    """Runs one Swift WSGI server on an already bound socket (never returns)."""
    from swift.common import utils, wsgi
    conf_path = os.path.join(etc, name + "-server.conf")
    conf = wsgi.appconfig(conf_path, name=name + "-server")
    utils.validate_configuration()
    logger = utils.get_logger(conf, name, log_route="wsgi")
    utils.disable_fallocate()
    # The socket was bound before eventlet was in charge: make it green, or
    # accept() would block the whole hub.
    from eventlet.greenio import GreenSocket
    wsgi.run_server(conf, logger, GreenSocket(sock), global_conf={"log_name": name})
    os._exit(0)


def supervise(p, socks):
    """Forks the servers, copies their log lines to log/swift.log, and stops
    them all on SIGTERM (or when one of them dies)."""
    logsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        os.unlink(p["sock"])
    except FileNotFoundError:
        pass
    logsock.bind(p["sock"])
    logf = open(os.path.join(p["log"], "swift.log"), "ab", buffering=0)
    children = {}
    for name, sock in socks.items():
        nworkers = {"proxy": PROXY_WORKERS, "object": OBJECT_WORKERS}.get(name, 1)
        for _ in range(max(1, nworkers)):
            pid = os.fork()
            if pid == 0:
                logsock.close()
                for other, s in socks.items():
                    if other != name:
                        s.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                try:
                    serve(name, p["etc"], sock)
                except BaseException as e:  # report and leave
                    os.write(2, ("swift_s3: %s server failed: %r\n" % (name, e)).encode())
                os._exit(1)
            children[pid] = name
    for s in socks.values():
        s.close()

    stopping = [False]
    wake_r, wake_w = os.pipe()

    def on_term(signum, frame):
        stopping[0] = True
        os.write(wake_w, b"x")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    deadline = time.time() + LIFETIME if LIFETIME > 0 else None
    while not stopping[0]:
        if deadline and time.time() > deadline:
            logf.write(b"swift_s3: lifetime over; stopping\n")
            break
        try:
            r, _, _ = select.select([logsock, wake_r], [], [], 0.5)
        except InterruptedError:
            continue
        if logsock in r:
            try:
                logf.write(logsock.recv(65536).rstrip(b"\0") + b"\n")
            except OSError:
                pass
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            logf.write(b"swift_s3: %s server (pid %d) exited with status %d; stopping\n"
                       % (children.pop(pid, "?").encode(), pid, status))
            break
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 5
    while children and time.time() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            children.pop(pid, None)
        else:
            time.sleep(0.05)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.unlink(p["pid"])
    except FileNotFoundError:
        pass
    os._exit(0)


def recorded_pid(p):
    try:
        with open(p["pid"]) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    """True while pid runs; a zombie (dead, not yet reaped by whoever adopted
    it, which can take a second in a container) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_pid(p):
    pid = recorded_pid(p)
    return pid if pid is not None and alive(pid) else None


def swift_request(port, method, path, headers):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, dict(r.headers)


def wait_ready(port, secret, deadline):
    """Ready when tempauth hands out a token and the test bucket exists."""
    last = None
    while time.time() < deadline:
        try:
            _, h = swift_request(port, "GET", "/auth/v1.0",
                                 {"X-Auth-User": "%s:%s" % (ACCOUNT, USER), "X-Auth-Key": secret})
            token = h.get("X-Auth-Token") or h.get("x-auth-token")
            swift_request(port, "PUT", "/v1/AUTH_%s/%s" % (ACCOUNT, BUCKET),
                          {"X-Auth-Token": token, "Content-Length": "0"})
            return
        except Exception as e:  # not up yet
            last = e
            time.sleep(0.1)
    raise SystemExit("swift_s3: the server did not answer in time (%s)" % last)


def start(d):
    p = paths(d)
    for k in ("etc", "dev", "run", "log"):
        os.makedirs(p[k], exist_ok=True)
    if running_pid(p):
        die("a server is already running in %s" % d)
    check_xattr(p["dev"])

    fresh = not os.path.exists(p["ports"])
    if fresh:
        socks = {name: bind(0) for name in SERVERS}
        ports = {name: s.getsockname()[1] for name, s in socks.items()}
        secret = secrets.token_hex(20)
        with open(p["ports"], "w") as f:
            json.dump(ports, f)
        with open(p["creds"], "w") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump({"secret": secret}, f)
    else:
        with open(p["ports"]) as f:
            ports = json.load(f)
        with open(p["creds"]) as f:
            secret = json.load(f)["secret"]
        socks = {name: bind(ports[name]) for name in SERVERS}

    sys.path.insert(0, HERE)
    try:
        from swift.common import utils
        import swift.common.middleware.s3api  # noqa: F401
    except ImportError as e:
        die("OpenStack Swift is not installed (python3-swift; make deps installs it): %s" % e)
    utils.SWIFT_CONF_FILE = os.path.join(p["etc"], "swift.conf")
    if fresh:
        write_config(p, ports, secret)
        build_rings(p["etc"], ports)
    # Import what the servers need once, before forking them.
    utils.validate_configuration()
    import swift.common.wsgi  # noqa: F401
    import swift.proxy.server  # noqa: F401
    import swift.obj.server  # noqa: F401
    import swift.account.server  # noqa: F401
    import swift.container.server  # noqa: F401
    import swift.common.middleware.s3api.s3api  # noqa: F401
    if not FSYNC:
        os.fsync = os.fdatasync = lambda fd: None
    # Patch once here rather than in each of the forked servers: their
    # start-up is what makes the server slow to come up on a busy machine.
    utils.eventlet_monkey_patch()

    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        errlog = os.open(os.path.join(p["log"], "stderr.log"),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(errlog, 2)
        with open(p["pid"], "w") as f:
            f.write("%d\n" % os.getpid())
        supervise(p, socks)
    for s in socks.values():
        s.close()
    try:
        wait_ready(ports["proxy"], secret, time.time() + 30)
    except SystemExit as e:
        stop(d)
        tail = ""
        for name in ("stderr.log", "swift.log"):
            try:
                with open(os.path.join(p["log"], name), errors="replace") as f:
                    tail += f.read()[-2000:]
            except OSError:
                pass
        die("%s\n%s" % (e, tail))
    print("TESSERA_TEST_S3_ENDPOINT=http://127.0.0.1:%d" % ports["proxy"])
    print("TESSERA_TEST_S3_REGION=%s" % REGION)
    print("TESSERA_TEST_S3_BUCKET=%s" % BUCKET)
    print("TESSERA_TEST_S3_ACCESS_KEY=%s:%s" % (ACCOUNT, USER))
    print("TESSERA_TEST_S3_SECRET_KEY=%s" % secret)
    print("TESSERA_TEST_S3_DIR=%s" % os.path.abspath(d))


def stop(d):
    """Stops the supervisor by its process id; it stops its servers.  The
    supervisor leads its own process group, so whatever is left of the group
    (servers whose supervisor was killed hard) is killed by that id."""
    p = paths(d)
    pid = recorded_pid(p)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + 8
    while time.time() < deadline and alive(pid):
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.unlink(p["pid"])
    except FileNotFoundError:
        pass


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop", "status"):
        sys.stderr.write("usage: swift_s3.py start|stop|status DIR\n")
        return 2
    d = argv[2]
    if argv[1] == "start":
        start(d)
    elif argv[1] == "stop":
        stop(d)
    else:
        return 0 if running_pid(paths(d)) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
