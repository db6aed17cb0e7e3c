"""Put make bench's markdown into README.md, between marker comments, so the README's figures come from one run.

    python3 bench/readme.py README.md NAME=FILE [NAME=FILE ...]

Each NAME's block is the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; everything else in the
README is left alone.  A missing marker is an error (nothing is written).
"""

import sys


def replace_block(text, name, body):
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"no {start} ... {end} block")
    return text[:i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]


def main():
    if len(sys.argv) < 3:
        raise SystemExit("usage: readme.py README.md NAME=FILE ...")
    with open(sys.argv[1]) as f:
        text = f.read()
    for arg in sys.argv[2:]:
        name, _, path = arg.partition("=")
        with open(path) as f:
            try:
                text = replace_block(text, name, f.read())
            except ValueError as e:
                raise SystemExit(f"readme.py: {sys.argv[1]}: {e}")
    with open(sys.argv[1], "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
