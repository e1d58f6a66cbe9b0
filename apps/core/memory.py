"""Handing freed heap back to the system.

A burst of work (a first sync's jobs, a webhook storm, a page under many readers) grows glibc's
heap; Python frees the objects, but glibc keeps the pages, and they count as the process's
memory for good. Once the process is quiet, malloc_trim gives them back.
"""
import ctypes


def give_back_free_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
