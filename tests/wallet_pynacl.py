#!/usr/bin/python3
"""wallet_pynacl.py - the other side of tests/t_wallet.sh: Bittensor wallet
files written and read the way btcli / bittensor-wallet do, with PyNaCl for
the encryption and plain Python for everything else, independently of
Tessera's C code.

    wallet_pynacl.py btcli-wallet ROOT NAME PASSWORD
        writes ROOT/NAME as btcli lays a wallet out: an encrypted coldkey
        ("$NACL" + nonce + secretbox, key by argon2i with btcli's salt and
        limits), coldkeypub.txt, hotkeys/default and hotkeys/defaultpub.txt
    wallet_pynacl.py open FILE [PASSWORD]
        opens a key file (decrypting it when it is "$NACL"), checks it as
        btwallet would read it and more: every member a string, the public
        key derived here from secretSeed and from privateKey (schnorrkel
        layout: scalar || nonce) equal to publicKey / accountId /
        ss58Address; prints {"public_key": "0x..", "ss58": ".."}
    wallet_pynacl.py pub FILE
        the same for a *pub.txt file (public members only)

The sr25519 public key is computed here with textbook Edwards25519
arithmetic and the ristretto255 encoding (RFC 9496), so the check does not
depend on the C implementation under test.  Exits 1 with one line on
stderr when a check fails.
"""
import hashlib
import json
import os
import sys

import nacl.pwhash
import nacl.secret
import nacl.utils

# btcli's fixed argon2i salt and limits (bittensor-wallet keyfile.rs)
NACL_SALT = bytes.fromhex("137183dff15a09bc9c90b5518739e9b1")


def nacl_key(password):
    return nacl.pwhash.argon2i.kdf(
        nacl.secret.SecretBox.KEY_SIZE, password.encode(), NACL_SALT,
        opslimit=nacl.pwhash.argon2i.OPSLIMIT_SENSITIVE,
        memlimit=nacl.pwhash.argon2i.MEMLIMIT_SENSITIVE)


def die(msg):
    print(f"wallet_pynacl: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------ ristretto255 / sr25519
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def is_neg(x):
    return x % P & 1


def sqrt_ratio_m1(u, v):
    u %= P
    v %= P
    r = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    check = v * r * r % P
    correct = check == u
    flipped = check == (-u) % P
    flipped_i = check == (-u * SQRT_M1) % P
    if flipped or flipped_i:
        r = r * SQRT_M1 % P
    if is_neg(r):
        r = P - r
    return correct or flipped, r


INVSQRT_A_MINUS_D = sqrt_ratio_m1(1, (-1 - D) % P)[1]


def ed_add(a, b):
    (x1, y1, z1, t1), (x2, y2, z2, t2) = a, b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * D * t1 * t2 % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def ed_mul(k, pt):
    acc = (0, 1, 1, 0)
    while k:
        if k & 1:
            acc = ed_add(acc, pt)
        pt = ed_add(pt, pt)
        k >>= 1
    return acc


BY = 4 * pow(5, P - 2, P) % P
BX = sqrt_ratio_m1((BY * BY - 1) % P, (D * BY * BY + 1) % P)[1]  # the even root
BASE = (BX, BY, 1, BX * BY % P)


def ristretto_encode(pt):
    x, y, z, t = pt
    u1 = (z + y) * (z - y) % P
    u2 = x * y % P
    _, invsqrt = sqrt_ratio_m1(1, u1 * u2 * u2)
    den1 = invsqrt * u1 % P
    den2 = invsqrt * u2 % P
    z_inv = den1 * den2 * t % P
    if is_neg(t * z_inv):
        x, y, den_inv = y * SQRT_M1 % P, x * SQRT_M1 % P, den1 * INVSQRT_A_MINUS_D % P
    else:
        den_inv = den2
    if is_neg(x * z_inv):
        y = (-y) % P
    s = den_inv * (z - y) % P
    if is_neg(s):
        s = P - s
    return s.to_bytes(32, "little")


def public_of_scalar(scalar32):
    k = int.from_bytes(scalar32, "little")
    if k >= L:
        die("privateKey scalar is not canonical (is it scalar * 8, the Ed25519 layout?)")
    return ristretto_encode(ed_mul(k, BASE))


def secret_of_mini(mini):
    """schnorrkel's ExpansionMode::Ed25519, as Substrate expands a seed."""
    h = hashlib.sha512(mini).digest()
    key = bytearray(h[:32])
    key[0] &= 248
    key[31] &= 63
    key[31] |= 64
    scalar = int.from_bytes(key, "little") >> 3  # divided by the cofactor
    return scalar.to_bytes(32, "little") + h[32:]


# ------------------------------------------------------------------ SS58
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def ss58(pk):
    d = bytes([42]) + pk
    n = int.from_bytes(d + hashlib.blake2b(b"SS58PRE" + d).digest()[:2], "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return out


# ----------------------------------------------------------- key files
def unhex(v, n, what):
    if not isinstance(v, str) or not v.startswith("0x") or len(v) != 2 + 2 * n:
        die(f"{what} is not 0x and {n} bytes of hex: {v!r}")
    return bytes.fromhex(v[2:])


def check_public(d, where):
    pks = set()
    for k in ("publicKey", "accountId"):
        if d.get(k) is not None:
            pks.add(unhex(d[k], 32, f"{where}: {k}"))
    if len(pks) != 1:
        die(f"{where}: publicKey and accountId missing or different")
    pk = pks.pop()
    if d.get("ss58Address") != ss58(pk):
        die(f"{where}: ss58Address {d.get('ss58Address')!r} is not the SS58 of the public key ({ss58(pk)})")
    return pk


def read_json(data, where):
    try:
        d = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError) as e:
        die(f"{where}: not JSON: {e}")
    if not isinstance(d, dict):
        die(f"{where}: not a JSON object")
    # btwallet reads a key file as a map of strings (or nulls)
    for k, v in d.items():
        if v is not None and not isinstance(v, str):
            die(f"{where}: member {k} is not a string")
    return d


def cmd_open(path, password=None):
    data = open(path, "rb").read()
    if data.startswith(b"$NACL"):
        if password is None:
            die(f"{path} is encrypted: give the password")
        box = nacl.secret.SecretBox(nacl_key(password))
        try:
            data = box.decrypt(data[5:])  # nonce (24) || MAC || ciphertext
        except nacl.exceptions.CryptoError:
            die(f"{path}: wrong password")
    d = read_json(data, path)
    pk = check_public(d, path)
    if d.get("secretSeed") is None and d.get("privateKey") is None:
        die(f"{path}: no secretSeed and no privateKey")
    if d.get("secretSeed") is not None:
        sk = secret_of_mini(unhex(d["secretSeed"], 32, "secretSeed"))
        if public_of_scalar(sk[:32]) != pk:
            die(f"{path}: the public key of secretSeed is not publicKey")
        if d.get("privateKey") is not None and unhex(d["privateKey"], 64, "privateKey") != sk:
            die(f"{path}: privateKey is not the schnorrkel secret (scalar || nonce) of secretSeed")
    if d.get("privateKey") is not None:
        sk = unhex(d["privateKey"], 64, "privateKey")
        if public_of_scalar(sk[:32]) != pk:
            die(f"{path}: the public key of privateKey (schnorrkel layout) is not publicKey")
    print(json.dumps({"public_key": "0x" + pk.hex(), "ss58": ss58(pk), "members": sorted(d)}))


def cmd_pub(path):
    d = read_json(open(path, "rb").read(), path)
    pk = check_public(d, path)
    extra = sorted(k for k, v in d.items() if v is not None and k not in ("accountId", "publicKey", "ss58Address"))
    if extra:
        die(f"{path}: a public key file with secret members {extra}")
    print(json.dumps({"public_key": "0x" + pk.hex(), "ss58": ss58(pk)}))


# The keys of the btcli wallet.  Coldkey: bittensor-wallet's own test vector
# (tests/test_keyfile.py: this mnemonic, this privateKey, this address); its
# mini-secret is substrate-bip39's of the mnemonic.  Hotkey: the Substrate
# development phrase's root key (schnorrkel's from_ed25519_bytes example).
COLD = {
    "secretPhrase": "old leopard transfer rib spatial phone calm indicate online fire caution review",
    "secretSeed": "0xda3cf5b1e9144931a0f0db65664aab662673b099415a7f8121b7245fb0be4143",
}
HOT = {
    "secretPhrase": "bottom drive obey lake curtain smoke basket hold race lonely fit walk",
    "secretSeed": "0xfac7959dbfe72f052e5a0c3c8d6530f202b02fd8f9f5ca3580ec8deb7797479e",
}


def btcli_keyfile(k):
    sk = secret_of_mini(bytes.fromhex(k["secretSeed"][2:]))
    pk = public_of_scalar(sk[:32])
    full = {"accountId": "0x" + pk.hex(), "publicKey": "0x" + pk.hex(), "privateKey": "0x" + sk.hex(),
            "secretPhrase": k["secretPhrase"], "secretSeed": k["secretSeed"], "ss58Address": ss58(pk)}
    pub = {"accountId": "0x" + pk.hex(), "publicKey": "0x" + pk.hex(), "ss58Address": ss58(pk)}
    # serde_json's compact form, as bittensor-wallet writes
    return json.dumps(full, separators=(",", ":")).encode(), json.dumps(pub, separators=(",", ":")).encode()


def write_0600(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def cmd_btcli_wallet(root, name, password):
    w = os.path.join(root, name)
    os.makedirs(os.path.join(w, "hotkeys"))  # default modes, as btcli
    cold, coldpub = btcli_keyfile(COLD)
    box = nacl.secret.SecretBox(nacl_key(password))
    write_0600(os.path.join(w, "coldkey"), b"$NACL" + bytes(box.encrypt(cold)))
    write_0600(os.path.join(w, "coldkeypub.txt"), coldpub)
    hot, hotpub = btcli_keyfile(HOT)
    write_0600(os.path.join(w, "hotkeys", "default"), hot)
    write_0600(os.path.join(w, "hotkeys", "defaultpub.txt"), hotpub)
    print(json.dumps({"coldkey": json.loads(coldpub)["ss58Address"], "hotkey": json.loads(hotpub)["ss58Address"]}))


def main():
    a = sys.argv[1:]
    # self-check of the arithmetic against bittensor-wallet's test vector
    vec = bytes.fromhex("1f1995bdf3a17b60626a26cfe6f564b337d46056b7a1281b64c649d592ccda0a")
    if public_of_scalar(vec).hex() != "e4359ad3e2716c539a1d663ebd0a51bdc5c98a12e663bb4c4402db47828c9446":
        die("self-check failed: the ristretto255 arithmetic here is wrong")
    if len(a) == 4 and a[0] == "btcli-wallet":
        cmd_btcli_wallet(a[1], a[2], a[3])
    elif len(a) in (2, 3) and a[0] == "open":
        cmd_open(a[1], a[2] if len(a) == 3 else None)
    elif len(a) == 2 and a[0] == "pub":
        cmd_pub(a[1])
    else:
        die(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
