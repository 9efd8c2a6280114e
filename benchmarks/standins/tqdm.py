"""A silent stand-in for `tqdm.tqdm` (see README.md beside this file)."""


class tqdm:  # noqa: N801 (the real class's name)
    def __init__(self, iterable=None, total=None, initial=0, **_options) -> None:
        self.iterable, self.n, self.format_dict = iterable, initial, {"rate": None}

    def __iter__(self):
        return iter(self.iterable or ())

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *_args, **_kwargs) -> None:
        pass

    def close(self) -> None:
        pass
