#!/usr/bin/python3
"""tok_texts.py - adversarial texts for the tokenizer conformance test
(tests/t_tokenizer.sh), written to OUT_DIR as bytes.  Seeded: the same files
on every run.

  every Unicode general category (Unicode 14, the version both Oniguruma
  6.9.8 and this Python know), mixed with ASCII words, digits and spaces;
  invalid UTF-8 (stray continuation bytes, overlongs, surrogates, truncated
  sequences, bytes F5..FF); long runs of spaces, newlines, tabs and digits;
  emoji (ZWJ sequences, flags, skin tones); NUL and other controls;
  contractions in every case (Llama 3's are case-insensitive); text that
  spells special tokens.

U+0085 and U+FEFF are left out: JavaScript's \\s and Oniguruma's disagree on
them (../shared/docs/TOKENIZER_NOTES.md); the test checks them apart."""
import random
import sys
import unicodedata

out = sys.argv[1]
rng = random.Random(20261203)
EXCLUDE = {0x85, 0xFEFF}

by_cat = {}
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF or cp in EXCLUDE:
        continue
    c = unicodedata.category(chr(cp))
    if c == 'Cn':
        continue  # unassigned: the Unicode versions of the engines differ
    by_cat.setdefault(c, []).append(cp)

def write(name, data):
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)

words = ["the", "quick", "Brown", "fox", "42", "3.14159", "x", "naïve", "café", "日本語", "مرحبا", "Привет"]
for cat in sorted(by_cat):
    pool = by_cat[cat]
    parts = []
    for _ in range(300):
        r = rng.random()
        if r < 0.45:
            parts.append(chr(rng.choice(pool)) * rng.choice([1, 1, 1, 2, 3]))
        elif r < 0.7:
            parts.append(rng.choice(words))
        elif r < 0.85:
            parts.append(rng.choice([" ", "  ", "\n", "\t", " \n ", "\r\n"]))
        else:
            parts.append(str(rng.randrange(10 ** rng.randrange(1, 8))))
    write(f"cat_{cat}.txt", "".join(parts).encode("utf-8"))

bad = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
       b"\xf5", b"\xff", b"\xfe", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3", b"\xe2", b"\xf0\x9f"]
parts = []
for _ in range(400):
    r = rng.random()
    if r < 0.4:
        parts.append(rng.choice(bad))
    elif r < 0.6:
        parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6))))
    else:
        parts.append((rng.choice(words) + rng.choice([" ", "", "\n"])).encode())
write("invalid_utf8.bin", b"".join(parts))

write("runs.txt", (" " * 5000 + "x" + "\n" * 300 + "\t" * 200 + "9" * 3001 + " " + "12" * 700 + "  \n\n  end  " +
                   "a" * 2000 + " " * 17 + "\n" + "!" * 999 + " \u00a0 \u3000 \u2003x").encode())
emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇩🇪", "🇯🇵", "❤️", "🧑🏿‍🚀", "🫠", "⚡", "1️⃣", "👩🏻‍💻"]
write("emoji.txt", " ".join(rng.choice(emoji) * rng.randrange(1, 4) + rng.choice(["", "x", " hi", "5"])
                            for _ in range(400)).encode())
write("controls.bin", b"".join(bytes([rng.randrange(32)]) + rng.choice([b"a", b" ", b"", b"\x00\x00", b"7"])
                               for _ in range(600)))
cont = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
write("contractions.txt", " ".join(rng.choice(["it", "IT", "We", "they", "o"]) +
                                   "".join(c if rng.random() < 0.5 else c.upper() for c in rng.choice(cont)) +
                                   rng.choice(["", "s", "'", " '"]) for _ in range(500)).encode())
write("specials.txt", "a<|endoftext|>b <|end_of_text|> <|begin_of_text|>x<|eot_id|>\n<|endoftext|><|reserved_special_token_5|>"
      .encode())
write("empty.txt", b"")
