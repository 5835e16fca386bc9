#!/usr/bin/python3
"""t_data_pool.py - the sample assignment implemented a second time, from
docs/FORMATS.md section 5 alone, in Python (PyNaCl's deterministic stream,
hashlib's BLAKE2b, NumPy for the shards), compared with `tessera data pages`.

Also: llm.c-layout uint16 shards written here with NumPy (exactly as llm.c's
write_datafile does) load in Tessera with identical tokens (every sample's id
is compared), and the worked example in docs/FORMATS.md is what the code does.
"""
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

REPO = os.environ.get("TESSERA_REPO", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
TESSERA = os.path.join(REPO, BUILD, "bin", "tessera")
NAME = "t_data_pool"

try:
    import numpy as np
    from nacl.bindings import randombytes_buf_deterministic
except Exception as exc:  # pragma: no cover - reported as a skip
    print(f"skip {NAME}/all\n    skipped: /usr/bin/python3 lacks numpy or PyNaCl ({exc})")
    sys.exit(0)

# ------------------------------------------------- the reference, from the doc

RANDOM_UID = 0xFFFFFFFF


def pool_seed(run: str, uid: int, window: int) -> bytes:
    r = run.encode("ascii")
    msg = b"tessera-pool-v1\x00" + bytes([len(r)]) + r + struct.pack("<IQ", uid, window)
    return hashlib.blake2b(msg, digest_size=32).digest()


class Stream:
    """uint64 LE words of randombytes_buf_deterministic(seed); a longer call
    returns a longer prefix of the same keystream, so growing is re-asking."""

    def __init__(self, seed: bytes, words: int = 1024):
        self.seed, self.pos = seed, 0
        self.buf = randombytes_buf_deterministic(8 * words, seed)

    def word(self) -> int:
        if self.pos + 8 > len(self.buf):
            self.buf = randombytes_buf_deterministic(2 * len(self.buf), self.seed)
        w = int.from_bytes(self.buf[self.pos:self.pos + 8], "little")
        self.pos += 8
        return w


def below(s: Stream, b: int) -> int:
    mask = (1 << (b - 1).bit_length()) - 1
    while True:
        x = s.word() & mask
        if x < b:
            return x


def pool_draw(seed: bytes, n: int, count: int) -> list:
    assert count <= n
    s = Stream(seed, 2 * count + 64)
    a, out = {}, []
    for i in range(count):
        j = i + below(s, n - i)
        out.append(a.get(j, j))
        a[j] = a.get(i, i)
    return out


class Dataset:
    """Shards in order; sample k of a shard of n tokens starts at k*T; the
    dataset numbers samples shard after shard."""

    def __init__(self, paths):
        self.shards = []
        for p in paths:
            h = np.fromfile(p, dtype="<i4", count=256)
            magic, version, count = int(h[0]), int(h[1]), int(h[2])
            dt = {(20240520, 1): "<u2", (20240520, 2): "<u4", (20240801, 7): "<u4"}[(magic, version)]
            toks = np.memmap(p, dtype=dt, mode="r", offset=1024, shape=(count,))
            self.shards.append(toks)

    def num_samples(self, T):
        return sum((len(t) - 1) // T if len(t) > T else 0 for t in self.shards)

    def sample(self, T, g):
        for t in self.shards:
            k = (len(t) - 1) // T if len(t) > T else 0
            if g < k:
                return t[g * T: g * T + T + 1].astype("<u4")
            g -= k
        raise IndexError(g)


def sample_id(tokens) -> int:
    return int.from_bytes(hashlib.blake2b(np.asarray(tokens, dtype="<u4").tobytes(), digest_size=8).digest(), "little")


def pool_digest(ids) -> bytes:
    return hashlib.blake2b(b"".join(struct.pack("<Q", i) for i in sorted(ids)), digest_size=32).digest()


# ----------------------------------------------------------------- harness

results = []


def check(name, fn):
    try:
        fn()
        print(f"ok   {NAME}/{name}")
    except AssertionError as exc:
        print(f"FAIL {NAME}/{name}")
        for line in str(exc).splitlines()[:12] or ["assertion failed"]:
            print(f"    {line}")
    except Exception:
        print(f"FAIL {NAME}/{name}")
        for line in traceback.format_exc().splitlines()[-8:]:
            print(f"    {line}")


def pages(data, run, uid, window, count, seq):
    cmd = [TESSERA, "data", "pages", "--data", data, "--run", run, "--window", str(window),
           "--count", str(count), "--seq", str(seq), "--json"]
    cmd += ["--random"] if uid == RANDOM_UID else ["--uid", str(uid)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{' '.join(cmd)}: rc {p.returncode}: {p.stderr.strip()}"
    return json.loads(p.stdout)


def write_llmc(path, toks, magic=20240520, version=1, dtype=np.uint16):
    # llm.c dev/data/data_common.py write_datafile, the same bytes
    h = np.zeros(256, dtype=np.int32)
    h[0], h[1], h[2] = magic, version, len(toks)
    with open(path, "wb") as f:
        f.write(h.tobytes())
        f.write(np.array(toks, dtype=dtype).tobytes())


def compare(ds, data, run, uid, window, count, seq):
    got = pages(data, run, uid, window, count, seq)
    seed = pool_seed(run, uid, window)
    n = ds.num_samples(seq)
    assert got["seed"] == seed.hex(), f"seed {got['seed']} != {seed.hex()}"
    assert got["num_samples"] == n, f"num_samples {got['num_samples']} != {n}"
    want = pool_draw(seed, n, count)
    if got["indices"] != want:
        first = next(i for i, (a, b) in enumerate(zip(got["indices"], want)) if a != b)
        raise AssertionError(f"indices differ first at position {first}: {got['indices'][first]} != {want[first]}"
                             f" (run {run} uid {uid} window {window} n {n} count {count})")
    ids = [sample_id(ds.sample(seq, g)) for g in want]
    got_ids = [int.from_bytes(bytes.fromhex(h), "little") for h in got["ids"]]
    if got_ids != ids:
        first = next(i for i, (a, b) in enumerate(zip(got_ids, ids)) if a != b)
        raise AssertionError(f"sample id differs at position {first} (sample {want[first]})")
    assert got["digest"] == pool_digest(ids).hex(), "digest differs"


def main():
    if not os.access(TESSERA, os.X_OK):
        print(f"FAIL {NAME}/binary\n    {TESSERA} not built")
        return
    tmp = tempfile.mkdtemp(prefix="t_data_pool-")
    try:
        run_checks(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_checks(tmp):
    rng = np.random.default_rng(20240520)
    # a dataset of mixed shards: llm.c uint16, Tessera uint32, a tiny one,
    # an empty one (names give the order)
    d = os.path.join(tmp, "mixed")
    os.mkdir(d)
    write_llmc(os.path.join(d, "a_000000.bin"), rng.integers(0, 50257, 70001))
    write_llmc(os.path.join(d, "b_000001.bin"), rng.integers(0, 100000, 33333), 20240520, 2, np.uint32)
    write_llmc(os.path.join(d, "c_000002.bin"), rng.integers(0, 50257, 5))
    write_llmc(os.path.join(d, "d_000003.bin"), [])
    write_llmc(os.path.join(d, "e_000004.bin"), rng.integers(0, 50257, 12345))
    paths = sorted(os.path.join(d, f) for f in os.listdir(d))
    ds = Dataset(paths)

    check("pool_matches_reference", lambda: [
        compare(ds, d, run, uid, w, count, seq) for run, uid, w, count, seq in [
            ("demo-run", 7, 42, 200, 64),
            ("demo-run", 8, 42, 200, 64),
            ("demo-run", 7, 43, 200, 64),
            ("Run_2.x", 0, 0, 1, 1),
            ("Run_2.x", 4294967294, 18446744073709551615 >> 1, 50, 3),
            ("r", RANDOM_UID, 5, 300, 100),
        ]])

    def whole_dataset():
        # the pool of every sample: a permutation, every id compared
        n = ds.num_samples(512)
        compare(ds, d, "full", 1, 1, n, 512)
    check("pool_of_every_sample_matches", whole_dataset)

    def large_pool():
        # a pool of 30,720 samples from 1,000,000 (many stream refills)
        big = os.path.join(tmp, "big.bin")
        write_llmc(big, np.zeros(1000001, dtype=np.uint16))
        got = pages(big, "templar-like", 12, 3456, 30720, 1)
        want = pool_draw(pool_seed("templar-like", 12, 3456), 1000000, 30720)
        assert got["indices"] == want, "pool of 30,720 differs"
        assert len(set(want)) == 30720
    check("large_pool_matches", large_pool)

    def llmc_gpt2_shards():
        # a GPT-2 train/val pair the way llm.c's fineweb.py names them
        g = os.path.join(tmp, "gpt2")
        os.mkdir(g)
        toks = rng.integers(0, 50257, 40001)
        toks[0] = 50256  # <|endoftext|> starts each document in llm.c
        write_llmc(os.path.join(g, "fineweb_train_000001.bin"), toks)
        insp = subprocess.run([TESSERA, "data", "inspect", g, "--json", "--scan", "--seq", "64"],
                              capture_output=True, text=True, timeout=60)
        assert insp.returncode == 0, insp.stderr
        info = json.loads(insp.stdout)[0]
        sh = info["shards"][0]
        assert sh["version"] == 1 and sh["token_bytes"] == 2 and sh["tokens"] == 40001, sh
        assert info["max_token"] == int(toks.max()), (info["max_token"], int(toks.max()))
        gds = Dataset([os.path.join(g, "fineweb_train_000001.bin")])
        n = gds.num_samples(64)
        assert n == 625, n
        compare(gds, g, "gpt2", 3, 9, n, 64)  # every sample's tokens, via its id
    check("llmc_uint16_shards_identical_tokens", llmc_gpt2_shards)

    def worked_example():
        text = open(os.path.join(REPO, "docs", "FORMATS.md"), encoding="utf-8").read()
        m = re.search(r"<!-- worked-example: pool -->\s*```\n(.*?)```", text, re.S)
        assert m, "docs/FORMATS.md has no '<!-- worked-example: pool -->' block"
        kv = {}
        for line in m.group(1).splitlines():
            if line.strip():
                k, _, v = line.partition(" ")
                kv[k] = v.strip()
        run, uid, window = kv["run"], int(kv["uid"]), int(kv["window"])
        n, count = int(kv["n"]), int(kv["count"])
        seed = pool_seed(run, uid, window)
        msg = b"tessera-pool-v1\x00" + bytes([len(run)]) + run.encode() + struct.pack("<IQ", uid, window)
        assert kv["message"] == msg.hex(), f"message {kv['message']} != {msg.hex()}"
        assert kv["seed"] == seed.hex(), f"seed {kv['seed']} != {seed.hex()}"
        words = [int(w, 16) for w in kv["words"].split()]
        s = Stream(seed)
        assert words == [s.word() for _ in words], "stream words differ"
        want = pool_draw(seed, n, count)
        assert [int(x) for x in kv["indices"].split()] == want, f"indices {kv['indices']} != {want}"
        # and the binary agrees on a dataset with exactly n samples at seq 1
        ex = os.path.join(tmp, "example.bin")
        write_llmc(ex, np.zeros(n + 1, dtype=np.uint16))
        got = pages(ex, run, uid, window, count, 1)
        assert got["indices"] == want and got["seed"] == seed.hex()
        rs = pool_seed(run, RANDOM_UID, window)
        assert kv["random_seed"] == rs.hex(), f"random_seed {kv['random_seed']} != {rs.hex()}"
        assert [int(x) for x in kv["random_indices"].split()] == pool_draw(rs, n, count)
        ids = kv["sample_id"].split()
        toks = [int(x) for x in ids[0].strip("[]").split(",")]
        assert ids[1] == hashlib.blake2b(np.asarray(toks, dtype="<u4").tobytes(), digest_size=8).hexdigest()
    check("formats_md_worked_example", worked_example)

    def documented_python():
        # the Python listing in docs/FORMATS.md 5.4 runs and agrees
        text = open(os.path.join(REPO, "docs", "FORMATS.md"), encoding="utf-8").read()
        sec = text[text.index("### 5.4"):text.index("### 5.5")]
        m = re.search(r"```python\n(.*?)```", sec, re.S)
        assert m, "no Python listing in docs/FORMATS.md 5.4"
        env = {"hashlib": hashlib, "struct": struct,
               "randombytes_buf_deterministic": randombytes_buf_deterministic}
        exec(m.group(1), env)
        for run, uid, w, n, count in [("demo-run", 7, 42, 600000, 10), ("x", 1, 2, 5, 5),
                                      ("y.z", RANDOM_UID, 0, 1 << 20, 3000)]:
            got = env["pool"](run, uid, w, n, count)
            assert got == pool_draw(pool_seed(run, uid, w), n, count), (run, uid, w, n, count)
    check("formats_md_python_listing", documented_python)


if __name__ == "__main__":
    main()
