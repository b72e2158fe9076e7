"""The FUSE front end: the tree of paths and inodes, the view, the translation to mfusepy, the daemon.

Only :mod:`~s3logfs.fs.fuse_ops` and :mod:`~s3logfs.fs.daemon` (once it serves) import the
FUSE binding; the view (:mod:`~s3logfs.fs.view`) answers in plain Python, so it can be
tested with no ``/dev/fuse``.
"""
