#!/usr/bin/python3
"""t_data_npy.py - NumPy .npy token shards (docs/FORMATS.md 5.1, 5.2): files
NumPy itself writes (np.save, np.lib.format.write_array with versions 1.0,
2.0 and 3.0; uint16 and uint32; a directory mixing .npy and llm.c .bin
shards) load in `tessera data` with exactly the tokens np.load reads, and
samples hash to the ids Python computes; malformed files (a wrong dtype, big
endian, Fortran order, 2-D, 0-D, truncated, trailing bytes, an absurd shape
or header length, a bad version, duplicate or missing keys) are refused with
a non-zero exit and one line on stderr naming the file and the reason.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

REPO = os.environ.get("TESSERA_REPO", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
TESSERA = os.path.join(REPO, BUILD, "bin", "tessera")
NAME = "t_data_npy"

try:
    import numpy as np
except Exception as exc:  # pragma: no cover - reported as a skip
    print(f"skip {NAME}/all\n    skipped: /usr/bin/python3 lacks numpy ({exc})")
    sys.exit(0)


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


def tessera(*args, timeout=120):
    return subprocess.run([TESSERA, *args], capture_output=True, text=True, timeout=timeout)


def inspect_json(path, *extra):
    p = tessera("data", "inspect", path, "--json", *extra)
    assert p.returncode == 0, f"inspect {path}: rc {p.returncode}: {p.stderr.strip()}"
    return json.loads(p.stdout)[0]


def cli_tokens(path, start, count):
    """Token ids [start, start + count) as `tessera data inspect --tokens` prints them (JSON)."""
    d = inspect_json(path, "--tokens", f"{start}:{count}")
    assert d["token_start"] == start, d["token_start"]
    return np.array(d["token_ids"], dtype=np.int64)


def npy_offset(path):
    """Where NumPy's own reader says the data starts."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        if major == 1:
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def write_version(path, arr, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=version)


def write_llmc(path, toks, magic=20240520, version=1, dtype=np.uint16):
    h = np.zeros(256, dtype=np.int32)
    h[0], h[1], h[2] = magic, version, len(toks)
    with open(path, "wb") as f:
        f.write(h.tobytes())
        f.write(np.asarray(toks, dtype=dtype).tobytes())


def raw_npy(path, dict_text, body=b"", major=1, pad=True):
    """A .npy file from a header dict given as text (padded as numpy pads it)."""
    prefix = 10 if major == 1 else 12
    h = dict_text.encode("latin1")
    if pad:
        total = prefix + len(h) + 1
        h += b" " * ((-total) % 64) + b"\n"
    ln = struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([major, 0]) + ln + h + body)


def expect_refused(path, reason):
    p = tessera("data", "inspect", path)
    err = p.stderr.strip()
    assert p.returncode != 0, f"{path}: accepted (rc 0): {p.stdout[:300]}"
    assert reason in err, f"{path}: stderr lacks {reason!r}: {err!r}"
    assert os.path.basename(path) in err, f"stderr does not name the file: {err!r}"
    assert len(err.splitlines()) == 1, f"want one line on stderr: {err!r}"


def sample_id(tokens):
    return hashlib.blake2b(np.asarray(tokens, dtype="<u4").tobytes(), digest_size=8).hexdigest()


def main():
    if not os.access(TESSERA, os.X_OK):
        print(f"FAIL {NAME}/binary\n    {TESSERA} not built")
        return
    tmp = tempfile.mkdtemp(prefix="t_data_npy-")
    try:
        run_checks(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_checks(tmp):
    rng = np.random.default_rng(20250101)
    P = lambda *a: os.path.join(tmp, *a)  # noqa: E731

    def same_tokens(path, arr, version, width):
        d = inspect_json(path, "--tokens", f"0:{len(arr)}", "--scan")
        sh = d["shards"][0]
        assert sh["format"] == "npy", sh
        assert sh["version"] == version and sh["token_bytes"] == width, sh
        assert sh["tokens"] == len(arr) and sh["file_bytes"] == os.path.getsize(path), sh
        assert sh["data_offset"] == npy_offset(path), (sh["data_offset"], npy_offset(path))
        assert sh["vocab_size"] == 0 and sh["tokenizer"] == 0, sh
        loaded = np.load(path)
        assert loaded.dtype == arr.dtype and np.array_equal(loaded, arr)
        got = np.array(d["token_ids"], dtype=np.int64)
        assert np.array_equal(got, arr.astype(np.int64)), "token ids differ from np.load's"
        assert d["max_token"] == int(arr.max()), (d["max_token"], int(arr.max()))

    def np_save_u32():
        # the whole uint32 range, as Templar's shards use
        arr = rng.integers(0, 2**32, 20001, dtype=np.uint32)
        arr[:3] = [0, 2**32 - 1, 2**31]
        np.save(P("u32.npy"), arr)
        same_tokens(P("u32.npy"), arr, 1, 4)
    check("np_save_uint32_same_tokens", np_save_u32)

    def np_save_u16():
        arr = rng.integers(0, 2**16, 30001, dtype=np.uint16)
        np.save(P("u16.npy"), arr)
        same_tokens(P("u16.npy"), arr, 1, 2)
    check("np_save_uint16_same_tokens", np_save_u16)

    def versions():
        for ver in [(1, 0), (2, 0), (3, 0)]:
            for dt, w in [(np.uint16, 2), (np.uint32, 4)]:
                arr = rng.integers(0, np.iinfo(dt).max, 777, dtype=dt)
                f = P(f"v{ver[0]}_{w}.npy")
                write_version(f, arr, ver)
                with open(f, "rb") as fh:
                    assert fh.read(8)[6] == ver[0]
                same_tokens(f, arr, ver[0], w)
    check("write_array_versions_1_2_3", versions)

    def big_shard():
        # 3,000,001 uint32 tokens (12 MB): reads far into the file
        arr = (np.arange(3000001, dtype=np.uint64) * 2654435761 % 2**32).astype(np.uint32)
        write_version(P("big.npy"), arr, (2, 0))
        got = cli_tokens(P("big.npy"), 2999990, 11)
        assert np.array_equal(got, arr[2999990:].astype(np.int64)), got
        d = inspect_json(P("big.npy"), "--seq", "1024")
        assert d["shards"][0]["tokens"] == 3000001 and d["samples"] == 2929, d
        # the count is clamped at the end; a start past it is refused
        assert len(cli_tokens(P("big.npy"), 3000000, 50)) == 1
        p = tessera("data", "inspect", P("big.npy"), "--tokens", "3000002:1")
        assert p.returncode == 1 and "past the end of the dataset (3000001 tokens)" in p.stderr, p.stderr
    check("large_v2_shard_tokens", big_shard)

    def mixed_dir():
        d = P("mixed")
        os.mkdir(d)
        a = rng.integers(0, 50257, 5000, dtype=np.uint16)
        b = rng.integers(0, 50257, 3001).astype(np.uint16)
        c = rng.integers(0, 128256, 4097, dtype=np.uint32)
        e = rng.integers(0, 2**32, 999, dtype=np.uint32)
        np.save(os.path.join(d, "train_000000.npy"), a)
        write_llmc(os.path.join(d, "train_000001.bin"), b)
        write_version(os.path.join(d, "train_000002.npy"), c, (2, 0))
        write_llmc(os.path.join(d, "val_000000.bin"), e, 20240801, 7, np.uint32)
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write("not a shard\n")
        np.save(os.path.join(d, ".hidden.npy"), a)
        info = inspect_json(d)
        names = [os.path.basename(s["path"]) for s in info["shards"]]
        assert names == ["train_000000.npy", "train_000001.bin", "train_000002.npy", "val_000000.bin"], names
        assert [s["format"] for s in info["shards"]] == ["npy", "llmc", "npy", "llmc"]
        assert [s["version"] for s in info["shards"]] == [1, 1, 2, 7]
        shards = [a, b, c, e]
        allt = np.concatenate([s.astype(np.int64) for s in shards])
        got = cli_tokens(d, 0, len(allt))
        assert np.array_equal(got, allt), "concatenated tokens differ"
        # samples across the mixed shards: the ids `data pages` prints are
        # BLAKE2b-64 of the tokens Python slices out of the arrays
        T = 64
        p = tessera("data", "pages", "--data", d, "--run", "npy-run", "--uid", "3", "--window", "7",
                    "--count", "100", "--seq", str(T), "--json")
        assert p.returncode == 0, p.stderr
        pg = json.loads(p.stdout)
        counts = [(len(s) - 1) // T if len(s) > T else 0 for s in shards]
        assert pg["num_samples"] == sum(counts), (pg["num_samples"], counts)

        def sample(g):
            for s, k in zip(shards, counts):
                if g < k:
                    return s[g * T: g * T + T + 1]
                g -= k
            raise IndexError(g)
        for g, sid in zip(pg["indices"], pg["ids"]):
            assert sample_id(sample(g)) == sid, f"sample {g}: id {sid} != {sample_id(sample(g))}"
        # a glob of the .npy files only, and one file
        info = inspect_json(os.path.join(d, "train_*.npy"))
        assert [os.path.basename(s["path"]) for s in info["shards"]] == ["train_000000.npy", "train_000002.npy"]
        assert info["tokens"] == len(a) + len(c)
        info = inspect_json(os.path.join(d, "train_000002.npy"))
        assert info["tokens"] == len(c)
    check("directory_mixing_npy_and_bin", mixed_dir)

    def text_tokens():
        arr = np.arange(40, dtype=np.uint32) * 1000
        np.save(P("text.npy"), arr)
        p = tessera("data", "inspect", P("text.npy"), "--tokens", "3:20")
        assert p.returncode == 0, p.stderr
        assert "tokens 3..22 (20 of 40):" in p.stdout, p.stdout
        body = p.stdout.split("--------\n")[1]
        assert len(body.splitlines()) == 2, body  # 16 a line
        assert [int(x) for x in body.split()] == [int(x) for x in arr[3:23]], body
        for bad in ["3", "3:", ":5", "a:5", "-1:5", "3:1048577", "1:2:3", "+1:2"]:
            p = tessera("data", "inspect", P("text.npy"), "--tokens", bad)
            assert p.returncode == 2 and "--tokens takes START:COUNT" in p.stderr, (bad, p.returncode, p.stderr)
        p = tessera("data", "inspect", "--help")
        assert "--tokens" in p.stdout and "START:COUNT" in p.stdout, p.stdout
    check("inspect_tokens_text_and_errors", text_tokens)

    def dataset_hash():
        # the dataset hash covers tokens, not layout: the same tokens as
        # .npy (u4), llm.c uint16 and uint32 shards hash alike; one token
        # changed, or a shard boundary moved, changes it
        rng = np.random.default_rng(5)
        a = rng.integers(0, 50000, 1000).astype(np.uint32)
        b = rng.integers(0, 50000, 777).astype(np.uint32)
        dirs = {k: P("hash-" + k) for k in ("npy", "u16", "u32", "changed", "moved")}
        for d in dirs.values():
            os.makedirs(d)
        np.save(os.path.join(dirs["npy"], "s0.npy"), a)
        np.save(os.path.join(dirs["npy"], "s1.npy"), b)
        write_llmc(os.path.join(dirs["u16"], "s0.bin"), a)
        write_llmc(os.path.join(dirs["u16"], "s1.bin"), b)
        write_llmc(os.path.join(dirs["u32"], "s0.bin"), a, version=2, dtype=np.uint32)
        np.save(os.path.join(dirs["u32"], "s1.npy"), b)
        c = a.copy()
        c[500] ^= 1
        np.save(os.path.join(dirs["changed"], "s0.npy"), c)
        np.save(os.path.join(dirs["changed"], "s1.npy"), b)
        ab = np.concatenate([a, b])
        np.save(os.path.join(dirs["moved"], "s0.npy"), ab[:1001])
        np.save(os.path.join(dirs["moved"], "s1.npy"), ab[1001:])
        # the documented definition, computed here
        h = hashlib.blake2b(digest_size=32)
        h.update(b"tessera-dataset-v1\0" + struct.pack("<I", 2))
        for arr in (a, b):
            h.update(struct.pack("<Q", len(arr)) + arr.astype("<u4").tobytes())
        want = h.hexdigest()
        got = {}
        for k, d in dirs.items():
            p = tessera("data", "hash", d, "--json")
            assert p.returncode == 0, p.stderr
            got[k] = json.loads(p.stdout)["dataset_hash"]
        assert got["npy"] == got["u16"] == got["u32"] == want, (got, want)
        assert got["changed"] != want and got["moved"] != want and got["changed"] != got["moved"], got
    check("dataset_hash_same_tokens_same_hash", dataset_hash)

    def refusals():
        R = lambda n: P("bad", n)  # noqa: E731
        os.makedirs(P("bad"))
        np.save(R("f4.npy"), np.arange(10, dtype=np.float32))
        expect_refused(R("f4.npy"), "dtype '<f4' is not a token type")
        np.save(R("be.npy"), np.arange(10, dtype=">u4"))
        expect_refused(R("be.npy"), "dtype '>u4' is not a token type")
        np.save(R("i8.npy"), np.arange(10, dtype=np.int64))
        expect_refused(R("i8.npy"), "dtype '<i8' is not a token type")
        np.save(R("u1.npy"), np.arange(10, dtype=np.uint8))
        expect_refused(R("u1.npy"), "dtype '|u1' is not a token type")
        np.save(R("obj.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
        expect_refused(R("obj.npy"), "dtype '|O' is not a token type")
        np.save(R("fortran.npy"), np.asfortranarray(np.zeros((3, 4), dtype=np.uint32)))
        expect_refused(R("fortran.npy"), "Fortran order")
        np.save(R("2d.npy"), np.zeros((3, 4), dtype=np.uint32))
        expect_refused(R("2d.npy"), "shape (3, 4) is 2-D")
        np.save(R("0d.npy"), np.uint32(5))
        expect_refused(R("0d.npy"), "shape () is 0-D (a scalar)")
        # truncated and trailing bytes
        np.save(R("trunc.npy"), np.arange(100, dtype=np.uint32))
        with open(R("trunc.npy"), "r+b") as f:
            f.truncate(os.path.getsize(R("trunc.npy")) - 3)
        expect_refused(R("trunc.npy"), "truncated .npy shard: shape says 100 tokens")
        np.save(R("tail.npy"), np.arange(100, dtype=np.uint16))
        with open(R("tail.npy"), "ab") as f:
            f.write(b"xyz")
        expect_refused(R("tail.npy"), ".npy shard has 3 bytes after its 100 tokens")
        # an absurd shape, written by NumPy's own header writer
        with open(R("huge.npy"), "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<u4", "fortran_order": False, "shape": (10**12,)})
            f.write(b"\0" * 64)
        expect_refused(R("huge.npy"), "shape (1000000000000,) exceeds the shard limit")
        raw_npy(R("limit.npy"), "{'descr': '<u2', 'fortran_order': False, 'shape': (2147483648,), }")
        expect_refused(R("limit.npy"), "exceeds the shard limit of 2147483647 tokens")
        # header lengths: absurd, past the end of the file
        with open(R("hlen.npy"), "wb") as f:
            f.write(b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{" * 100)
        expect_refused(R("hlen.npy"), ".npy header length 4294967280 exceeds the limit of 65536 bytes")
        with open(R("hend.npy"), "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", 5000) + b"{'descr': '<u4'")
        expect_refused(R("hend.npy"), ".npy header length 5000 goes past the end of the file")
        # version and magic
        np.save(R("v4.npy"), np.arange(10, dtype=np.uint32))
        with open(R("v4.npy"), "r+b") as f:
            f.seek(6)
            f.write(b"\x04")
        expect_refused(R("v4.npy"), "unsupported .npy version 4.0")
        write_llmc(R("llmc.npy"), [1, 2, 3])
        expect_refused(R("llmc.npy"), "not a .npy file: bad magic")
        # dicts NumPy never writes
        raw_npy(R("dup.npy"), "{'descr': '<u4', 'fortran_order': False, 'shape': (1,), 'descr': '<u4', }",
                b"\0" * 4)
        expect_refused(R("dup.npy"), "duplicate key 'descr'")
        raw_npy(R("miss.npy"), "{'descr': '<u4', 'shape': (1,), }", b"\0" * 4)
        expect_refused(R("miss.npy"), "missing key 'fortran_order'")
        raw_npy(R("nl.npy"), "{'descr': '<u4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, pad=False)
        expect_refused(R("nl.npy"), "does not end in a newline")
        # one bad file fails a directory holding it
        p = tessera("data", "inspect", P("bad"))
        assert p.returncode != 0 and ".npy" in p.stderr, p.stderr
    check("malformed_files_refused", refusals)


if __name__ == "__main__":
    main()
