"""Outgoing mail: SMTP when `UGC_SMTP_URL` is set, otherwise `.eml` files in the outbox folder."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Mailer:
    def __init__(self, *, smtp_url: str | None, outbox_dir: Path, sender: str) -> None:
        self.smtp_url = smtp_url
        self.outbox_dir = outbox_dir
        self.sender = sender

    def send(self, *, to: str, subject: str, body: str, message_key: str) -> None:
        """Send one mail; `message_key` names it, so sending it again replaces, not duplicates, a file."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = f"<{message_key}@ugc.local>"
        if self.smtp_url:
            message.set_content(body)
            self._send_smtp(message)
        else:
            # 8bit keeps the link readable for a person who opens the file.
            message.set_content(body, cte="8bit")
            self._write_eml(message, message_key)

    def _send_smtp(self, message: EmailMessage) -> None:
        url = urlsplit(self.smtp_url or "")
        smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        with smtp_class(
            url.hostname or "127.0.0.1", url.port or (465 if url.scheme == "smtps" else 25), timeout=10
        ) as smtp:
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)

    def _write_eml(self, message: EmailMessage, message_key: str) -> None:
        self.outbox_dir.mkdir(parents=True, exist_ok=True)
        final = self.outbox_dir / f"{message_key}.eml"
        partial = final.with_suffix(".eml.part")
        partial.write_bytes(bytes(message))
        partial.replace(final)
