"""Secrets never reach a log line: presigned URLs, tokens and tracebacks go through the redaction filter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import botocore.config
import pytest

from helpers import FAKE_ACCESS_KEY, FAKE_SECRET, FAKE_TOKEN


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as it was after a test that calls setup_logging."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("botocore", "boto3", "urllib3", "s3transfer")}
    yield
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def test_presigned_urls_and_tracebacks_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logging: None
) -> None:
    import logging

    import boto3

    from s3logfs.config import setup_logging

    monkeypatch.setenv("AWS_SESSION_TOKEN", FAKE_TOKEN)
    urls = []
    for version, region in (("s3v4", "eu-west-1"), ("s3", "us-east-1")):  # SigV4 and SigV2 presigned URLs
        client = boto3.client("s3", region_name=region, aws_access_key_id=FAKE_ACCESS_KEY,
                              aws_secret_access_key=FAKE_SECRET, aws_session_token=FAKE_TOKEN,
                              config=botocore.config.Config(signature_version=version))
        urls.append(client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60))
    signatures = [re.search(r"Signature=([^&]+)", url).group(1) for url in urls]  # type: ignore[union-attr]
    tokens = [re.search(r"(?i)x-amz-security-token=([^&]+)", url).group(1) for url in urls]  # type: ignore[union-attr]
    log_file = tmp_path / "debug.log"
    setup_logging("DEBUG", log_file)
    logger = logging.getLogger("s3logfs.test")
    for url in urls:
        logger.debug("fetching %s", url)
        try:
            raise RuntimeError(f"failed on {url}")
        except RuntimeError:
            logger.exception("with a traceback")
    logger.info("config %s", {"aws_secret_access_key": "x" * 40, "aws_session_token": "y" * 40})
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()
    assert text.count("fetching") == 2 and text.count("with a traceback") == 2 and "RuntimeError" in text
    for secret in (*signatures, *tokens, FAKE_ACCESS_KEY, FAKE_TOKEN, "x" * 40, "y" * 40):
        assert secret not in text
    assert text.count("Signature=[REDACTED]") == 4  # each URL, in its message and its traceback
