"""CP932 and EUC-JP blocks to UTF-8 with the C library's iconv, inside this process.

iconv decodes these two as Python's codecs do (tests/test_scan compares every character)
and about twice as fast. Called through ctypes it also runs without the GIL, so two
blocks are transcoded at once while the matching threads work on the previous ones, and
no bytes travel through pipes to a child process and back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Sequence
from typing import Any

_NAMES = {"cp932": b"CP932", "euc_jp": b"EUC-JP"}
_FAILED = ctypes.c_size_t(-1).value  # what iconv_open and iconv return on failure
_E2BIG = 7  # errno: the output buffer is full


class _Iconv:
    """The three iconv functions of the C library (None where there is no iconv)."""

    def __init__(self) -> None:
        self.ok = False
        for name in ("c", "iconv"):  # glibc has it in libc; macOS and BSDs in libiconv
            path = ctypes.util.find_library(name)
            if not path:
                continue
            try:
                lib = ctypes.CDLL(path, use_errno=True)
                self.open: Any = lib.iconv_open
                self.iconv: Any = lib.iconv
                self.close: Any = lib.iconv_close
            except (OSError, AttributeError):
                continue
            self.open.restype = ctypes.c_void_p
            self.open.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            pointer, size = ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)
            self.iconv.restype = ctypes.c_size_t
            self.iconv.argtypes = [ctypes.c_void_p, pointer, size, pointer, size]
            self.close.argtypes = [ctypes.c_void_p]
            self.ok = True
            return


_LIB: _Iconv | None = None
_LOCK = threading.Lock()


def _lib() -> _Iconv:
    global _LIB
    with _LOCK:
        if _LIB is None:
            _LIB = _Iconv()
        return _LIB


def available(encoding: str) -> bool:
    """Whether ``encoding`` can be transcoded here (else Python's codec is used)."""
    if encoding not in _NAMES or sys.platform == "win32":
        return False
    lib = _lib()
    if not lib.ok:
        return False
    handle = lib.open(b"UTF-8", _NAMES[encoding])
    if handle is None or handle == _FAILED:
        return False
    lib.close(handle)
    return True


_BUFFERS = threading.local()  # one output buffer per decoding thread, reused block after block


def _buffer(size: int) -> ctypes.Array[ctypes.c_char]:
    buffer: ctypes.Array[ctypes.c_char] | None = getattr(_BUFFERS, "out", None)
    if buffer is None or len(buffer) < size:
        buffer = ctypes.create_string_buffer(size)
        _BUFFERS.out = buffer
    return buffer


Piece = tuple[bytes, int, int]  # bytes[start:end], without copying them out


def to_utf8(block: bytes | Sequence[Piece], encoding: str) -> bytes | None:
    """``block`` in UTF-8, or None when iconv is missing or meets a byte it cannot decode
    (the caller then decodes with Python's codec, which replaces and counts such bytes).
    ``block`` may be given as pieces, converted one after the other into one output, so
    the reader never joins a block's pieces into a copy. The GIL is released for the
    conversion itself."""
    if not available(encoding):
        return None
    pieces = [(block, 0, len(block))] if isinstance(block, bytes) else block
    total = sum(end - start for _, start, end in pieces)
    lib = _lib()
    handle = lib.open(b"UTF-8", _NAMES[encoding])
    try:
        # Most Japanese text grows by half at most (two bytes become three); half-width
        # kana triple, and then the buffer grows when iconv says it is full.
        out = _buffer(total * 3 // 2 + 64)
        used = 0
        for data, start, end in pieces:
            base = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
            source = ctypes.c_void_p(base + start)
            left = ctypes.c_size_t(end - start)
            while left.value:
                target = ctypes.c_void_p(ctypes.addressof(out) + used)
                room = ctypes.c_size_t(len(out) - used)
                done = lib.iconv(
                    handle,
                    ctypes.byref(source),
                    ctypes.byref(left),
                    ctypes.byref(target),
                    ctypes.byref(room),
                )
                used = len(out) - room.value
                if done != _FAILED:
                    break
                if ctypes.get_errno() != _E2BIG:
                    return None  # an undecodable byte, or a character cut off at the end
                bigger = _buffer(len(out) * 2)
                ctypes.memmove(bigger, out, used)
                out = bigger
        return ctypes.string_at(out, used)
    finally:
        lib.close(handle)
