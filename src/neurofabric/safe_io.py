"""Writing output files without ever costing data.

Every file neurofabric writes (networks, stimuli, recordings, NIR graphs,
plots, build reports) goes through here:

- the output is checked before the work starts (`check_output_path`): an
  existing output must be a regular file (a FIFO, a device node, a folder or a
  symlink is refused, never followed or replaced), it must not be one of the
  command's inputs, and its folder must exist and be writable;
- the data goes to a unique temporary file in the target's folder, created
  with `O_EXCL` so a symlink planted at any name cannot redirect it, and is
  renamed onto the target only once it is complete and on disk
  (`atomic_output`). A crash or an error leaves the target as it was; two
  writers racing for one target each rename a whole file, so the result is
  always one complete file.

Pure Python, below the parts (like `neurofabric.paths`): the host and the boards
(their build reports) both use it.
"""

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from neurofabric.contract.errors import NetworkError

__all__ = ["check_output_path", "check_output_folder", "atomic_output", "atomic_output_path"]


def _umask():
    # The only portable way to read the umask is to set it; done once, at
    # import, before any thread of ours could be creating files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _kind(mode):
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _same_file(path, other):
    try:
        if os.path.samefile(path, other):
            return True
    except OSError:
        pass
    return os.path.realpath(path) == os.path.realpath(other)


def check_output_path(path, *, inputs=(), what="output", error=NetworkError) -> Path:
    """Refuse, before any work, an output that writing would harm or could not finish.

    Refused with `error` (a one-line message naming the path): an existing
    `path` that is not a regular file (symlink, FIFO, device node, folder:
    never followed or replaced), a `path` that is the same file as any of
    `inputs` (None entries are skipped), and a `path` whose folder does not
    exist or is not writable. Returns `path` as a `Path`.
    """
    if path is None or str(path) == "":
        raise error(f"{what}: no file name given")
    path = Path(path)
    shown = str(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise error(f"{what} {shown!r} cannot be checked: {exc.strerror or exc}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {shown!r} is {_kind(st.st_mode)}: refusing to replace it; "
                    "name a regular file")
    for other in inputs:
        if other is not None and _same_file(path, other):
            raise error(f"{what} {shown!r} is the same file as the input {str(other)!r}: "
                        "refusing to overwrite an input; name another output file")
    folder = path.parent
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise error(f"{what} {shown!r}: folder {str(folder)!r} {state}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"{what} {shown!r}: folder {str(folder)!r} is not writable")
    return path


def check_output_folder(folder, names=(), *, inputs=(), what="output", error=NetworkError,
                        parents=False) -> Path:
    """Make sure `folder` can take the files `names`, before any work; make it if missing.

    Refused with `error` (one line naming the path): a `folder` that exists
    and is not a folder (or a link to one), a missing `folder` whose parent
    does not exist (unless `parents`: a mistyped path is refused rather than
    made into a tree of folders), and any of `names` in it that
    `check_output_path` refuses. Returns `folder` as a `Path`.
    """
    if folder is None or str(folder) == "":
        raise error(f"{what} folder: no folder name given")
    folder = Path(folder)
    shown = str(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        try:
            mode = os.lstat(folder).st_mode
            kind = "a regular file" if stat.S_ISREG(mode) else _kind(mode)
        except OSError:
            kind = "of a kind that cannot be examined"
        raise error(f"{what} folder {shown!r} exists and is {kind}, not a folder: name a folder "
                    "(it is made if missing)")
    if not folder.is_dir():
        parent = folder.parent
        if not parents and not parent.is_dir():
            state = "is not a folder" if os.path.lexists(parent) else "does not exist"
            raise error(f"{what} folder {shown!r}: its parent {str(parent)!r} {state}; "
                        "make it first or name another folder")
        try:
            folder.mkdir(parents=parents, exist_ok=True)
        except OSError as exc:
            raise error(f"{what} folder {shown!r} cannot be made: {exc.strerror or exc}") from None
    for name in names:
        check_output_path(folder / name, inputs=inputs, what=f"{what} file", error=error)
    return folder


@contextlib.contextmanager
def atomic_output_path(path, *, inputs=(), what="output", error=NetworkError):
    """Yield a fresh temporary path in `path`'s folder; rename it onto `path` on success.

    For writers that take a file name rather than a file object (NIR's HDF5).
    The same checks as `check_output_path` run first, and again just before
    the rename; on any error the temporary is removed and `path` is untouched.
    """
    path = check_output_path(path, inputs=inputs, what=what, error=error)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise error(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        _set_mode(tmp, path)
        _replace(tmp, path, inputs, what, error)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path, *, inputs=(), mode="wb", what="output", error=NetworkError):
    """Write `path` atomically: yield an open temporary file, then rename it onto `path`.

    Runs `check_output_path` first. The temporary is unique, created with
    `O_EXCL` in the target's folder (so the rename never crosses file systems
    and a planted symlink cannot redirect the write); after the block it is
    flushed, fsynced and renamed onto `path` with `os.replace`. On any error
    the temporary is removed and `path` is left as it was; an `OSError` while
    writing becomes `error` with a one-line message.
    """
    path = check_output_path(path, inputs=inputs, what=what, error=error)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise error(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from None
    try:
        fh = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _set_mode(tmp, path)
        _replace(tmp, path, inputs, what, error)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise error(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _set_mode(tmp, path):
    # mkstemp makes the file 0600; give the output the mode a plain open()
    # would (or the mode of the file it replaces).
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
    except OSError:
        mode = 0o666 & ~_UMASK
    os.chmod(tmp, mode)


def _replace(tmp, path, inputs, what, error):
    # Checked again: the work may have taken minutes, and something else may
    # have appeared at the target meanwhile.
    check_output_path(path, inputs=inputs, what=what, error=error)
    os.replace(tmp, path)
    # The rename is durable only once the folder's entry is on disk.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
