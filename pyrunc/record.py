"""record(): collections.namedtuple's behaviour for pyrunc's plain data records, without `collections`.

`collections` costs ~2 ms of every create and run here (it imports operator, keyword, reprlib, itertools), and
namedtuple was its only use on those paths.  A record is a tuple: it compares, unpacks and hashes as one; fields
read by name, positionally or by keyword on construction, the last ones with defaults; _replace() and a
namedtuple-style repr.
"""


def record(name, fields, defaults=()):
    fields = tuple(fields.split())
    index = {f: i for i, f in enumerate(fields)}
    first_default = len(fields) - len(defaults)

    def __new__(cls, *args, **kw):
        if len(args) > len(fields):
            raise TypeError(f"{name}() takes {len(fields)} arguments, got {len(args)}")
        values = list(args) + [None] * (len(fields) - len(args))
        for k, v in kw.items():
            i = index.get(k)
            if i is None or i < len(args):
                raise TypeError(f"{name}() got an unexpected or repeated argument {k!r}")
            values[i] = v
        for i in range(len(args), len(fields)):
            if fields[i] not in kw:
                if i < first_default:
                    raise TypeError(f"{name}() missing argument {fields[i]!r}")
                values[i] = defaults[i - first_default]
        return tuple.__new__(cls, values)

    def _replace(self, **kw):
        values = list(self)
        for k, v in kw.items():
            if k not in index:
                raise TypeError(f"{name}._replace() got an unexpected argument {k!r}")
            values[index[k]] = v
        return tuple.__new__(type(self), values)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{f}={v!r}' for f, v in zip(fields, self))})"

    ns = {"__slots__": (), "__new__": __new__, "_replace": _replace, "__repr__": __repr__, "_fields": fields,
          "__getnewargs__": lambda self: tuple(self)}
    for i, f in enumerate(fields):
        ns[f] = property(lambda self, i=i: tuple.__getitem__(self, i), doc=f"field {i}: {f}")
    return type(name, (tuple,), ns)
