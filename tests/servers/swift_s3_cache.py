"""swift_s3_cache.py - an in-process stand-in for memcached in the test
Swift proxy (tempauth insists on a cache; a memcached daemon would be one
more process and one more port).  Each proxy worker has its own."""
import time


class DictCache(object):
    def __init__(self):
        self.d = {}

    def _live(self, key):
        v = self.d.get(key)
        if v is None:
            return None
        value, expires = v
        if expires and expires < time.time():
            del self.d[key]
            return None
        return v

    def get(self, key, raise_on_error=False):
        v = self._live(key)
        return v[0] if v else None

    def set(self, key, value, serialize=True, time=0, min_compress_len=0,
            raise_on_error=False):
        self.d[key] = (value, _expiry(time))

    def incr(self, key, delta=1, time=0):
        v = self._live(key)
        n = int(v[0]) + delta if v else delta
        self.d[key] = (n, _expiry(time))
        return n

    def decr(self, key, delta=1, time=0):
        return self.incr(key, -delta, time)

    def delete(self, key, server_key=None):
        self.d.pop(key, None)

    def set_multi(self, mapping, server_key, serialize=True, time=0, min_compress_len=0):
        for k, v in mapping.items():
            self.set(k, v, time=time)

    def get_multi(self, keys, server_key):
        return [self.get(k) for k in keys]


def _expiry(t):
    if not t:
        return 0
    # memcached semantics: above 30 days it is an absolute time
    return t if t > 30 * 24 * 3600 else time.time() + t


def filter_factory(global_conf, **local_conf):
    cache = DictCache()

    def factory(app):
        def middleware(env, start_response):
            env['swift.cache'] = cache
            return app(env, start_response)
        return middleware
    return factory
