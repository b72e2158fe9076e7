"""The FUSE front end: the tree of paths and inodes, the view, the translation to mfusepy, the daemon.

The FUSE binding is imported only to check that libfuse loads (:mod:`~s3logfs.fs.host`) and
to serve (:mod:`~s3logfs.fs.fuse_ops`, imported by the daemon once it mounts); the view (:mod:`~s3logfs.fs.view`) answers in plain Python, so it can be
tested with no ``/dev/fuse``.
"""
