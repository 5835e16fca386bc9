#!/usr/bin/python3
"""fake_s3.py - a scripted S3 look-alike on loopback for the storage fault
tests (the cases a real server will not produce on demand).  It checks no
signature.  It serves one mode, logs every request as one line
"METHOD PATH port=CLIENT_PORT" to LOG, and stops by itself after --lifetime seconds.

    fake_s3.py MODE LOG [--lifetime S]

prints "PORT PID" once listening, then runs in the background.

Modes:
    flaky:N:CODE   the first N requests get HTTP CODE with an S3 error body,
                   then GETs return BODY and PUTs succeed
    status:CODE    every request gets HTTP CODE with an S3 error body
    stall          read the request, then send nothing
    stall-body     send the headers of a large answer and 100 bytes, then
                   nothing
    drip           HEAD: a 2000-byte object modified two seconds ago; GET:
                   the headers of a 4 MB answer, then 110 bytes every 0.1 s
                   (about 1100 B/s: above a 1 KB/s stall limit) for as long
                   as the client reads
    partfail       multipart: initiate works, part 2 is refused (400),
                   abort (DELETE ?uploadId=) is answered 204
    error200       multipart: initiate and parts work, the first complete
                   answers 200 with an InternalError inside, the second
                   succeeds
    listing        ListObjectsV2 in two pages (entities, a token to encode)
    listing-loop   a truncated listing whose token never changes
    listing-bad    a listing entry without a Size
    garbage        200 answers whose body is not XML
"""
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"hello from the fake server\n"
ERROR_CODES = {400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey",
               429: "SlowDown", 500: "InternalError", 503: "SlowDown"}


class State:
    mode = ""
    log = None
    count = 0
    completes = 0
    lock = threading.Lock()


def error_xml(code, key):
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>%s</Code>"
            "<Message>scripted failure</Message><Key>%s</Key>"
            "<RequestId>fake-%d</RequestId></Error>" % (code, key, State.count)).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def fail(self, status):
        self.reply(status, error_xml(ERROR_CODES.get(status, "Scripted"), self.path),
                   {"Content-Type": "application/xml", "x-amz-request-id": "fake-%d" % State.count})

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        with State.lock:
            State.count += 1
            count = State.count
            State.log.write("%s %s port=%d\n" % (self.command, self.path, self.client_address[1]))
            State.log.flush()
        mode = State.mode
        path, _, query = self.path.partition("?")
        if mode.startswith("flaky:"):
            _, k, code = mode.split(":")
            if count <= int(k):
                return self.fail(int(code))
            return self.normal(path, query)
        if mode.startswith("status:"):
            return self.fail(int(mode.split(":")[1]))
        if mode == "stall":
            time.sleep(30)
            self.close_connection = True
            return
        if mode == "stall-body":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.send_header("Content-Range", "bytes 0-999999/1000000")
            self.end_headers()
            self.wfile.write(b"x" * 100)
            self.wfile.flush()
            time.sleep(30)
            self.close_connection = True
            return
        if mode == "drip":
            return self.drip()
        if mode in ("partfail", "error200"):
            return self.multipart(mode, path, query)
        if mode.startswith("listing"):
            return self.listing(mode, query)
        if mode == "garbage":
            return self.reply(200, b"this is not XML <ListBucketResult")
        return self.normal(path, query)

    def drip(self):
        if self.command == "HEAD":
            lm = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 2))
            self.send_response(200)
            self.send_header("Content-Length", "2000")
            self.send_header("Last-Modified", lm)
            self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "4000000")
        self.end_headers()
        try:
            for _ in range(36000):
                self.wfile.write(b"x" * 110)
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass
        self.close_connection = True

    def normal(self, path, query):
        etag = {"ETag": '"0123456789abcdef0123456789abcdef"',
                "Last-Modified": "Mon, 23 Nov 2026 16:00:00 GMT"}
        if self.command in ("GET", "HEAD"):
            return self.reply(200, BODY, etag)
        if self.command == "DELETE":
            return self.reply(204)
        return self.reply(200, b"", etag)

    def multipart(self, mode, path, query):
        if self.command == "POST" and query.startswith("uploads"):
            return self.reply(200, b"<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                                   b"<UploadId>fake-upload-1</UploadId></InitiateMultipartUploadResult>")
        if self.command == "PUT" and "partNumber=" in query:
            if mode == "partfail" and "partNumber=2&" in query:
                return self.fail(400)
            return self.reply(200, b"", {"ETag": '"%032x"' % State.count})
        if self.command == "DELETE" and "uploadId=" in query:
            return self.reply(204)
        if self.command == "POST" and "uploadId=" in query:
            with State.lock:
                State.completes += 1
                first = State.completes == 1
            if first:
                return self.reply(200, b"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>InternalError"
                                       b"</Code><Message>scripted</Message></Error>")
            return self.reply(200, b"<CompleteMultipartUploadResult><ETag>\"abc-3\"</ETag>"
                                   b"</CompleteMultipartUploadResult>")
        return self.normal(path, query)

    def listing(self, mode, query):
        entry = ("<Contents><Key>%s</Key><LastModified>2026-11-23T16:00:00.500Z</LastModified>"
                 "<ETag>&quot;%s&quot;</ETag>%s<StorageClass>STANDARD</StorageClass></Contents>")
        head = "<?xml version='1.0' encoding='UTF-8'?>\n<ListBucketResult><Name>fake-bucket</Name>"
        if mode == "listing-loop":
            body = head + "<IsTruncated>true</IsTruncated><NextContinuationToken>same</NextContinuationToken>" + \
                entry % ("p/x", "e", "<Size>1</Size>") + "</ListBucketResult>"
        elif mode == "listing-bad":
            body = head + "<IsTruncated>false</IsTruncated>" + entry % ("p/x", "e", "") + "</ListBucketResult>"
        elif "continuation-token=" not in query:
            body = head + "<KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>" \
                "<NextContinuationToken>tok+/=1</NextContinuationToken>" + \
                entry % ("p/a &amp; b", "e1", "<Size>3</Size>") + entry % ("p/c", "e2", "<Size>5</Size>") + \
                "</ListBucketResult>"
        else:
            body = head + "<KeyCount>1</KeyCount><IsTruncated>false</IsTruncated>" + \
                entry % ("p/d/&#x2603;", "e3-2", "<Size>7</Size>") + "</ListBucketResult>"
        return self.reply(200, body.encode(), {"Content-Type": "application/xml"})

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    lifetime = 60.0
    if len(argv) >= 5 and argv[3] == "--lifetime":
        lifetime = float(argv[4])
    State.mode = argv[1]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    pid = os.fork()
    if pid:
        print("%d %d" % (port, pid), flush=True)
        return 0
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    State.log = open(argv[2], "a")
    threading.Timer(lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
