"""/proc/self/mountinfo fields: the kernel writes space, tab, newline and backslash in a path as \\ooo (octal)."""

from . import osx as os


def unescape(field):
    """A mountinfo path field as the path it names: str in, str out (UTF-8, undecodable bytes surrogate-escaped);
    bytes in, bytes out."""
    if isinstance(field, str):
        return field if "\\" not in field else os.fsdecode(unescape(os.fsencode(field)))
    if b"\\" not in field:
        return field
    out, i = bytearray(), 0
    while i < len(field):
        if field[i:i + 1] == b"\\" and len(field) >= i + 4 and field[i + 1:i + 4].isdigit():
            out.append(int(field[i + 1:i + 4], 8))
            i += 4
        else:
            out += field[i:i + 1]
            i += 1
    return bytes(out)
