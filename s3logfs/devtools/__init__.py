"""Development tools: the local S3 server, the demo and its sample data.

Nothing in the product imports this package but ``s3logfs demo``. The server's latency
and fault middleware is test and benchmark machinery: it injects nothing unless a
caller adds faults to it.
"""
