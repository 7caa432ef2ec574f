"""The words of notifications: one line per notification type and the role of whoever caused it.

Events record facts (who did what); what a person reads is presentation, kept here and filled in by
the notifications projection, so changing a line changes what a rebuilt read model says, never
the log. Roles are `ugc.notifications.acting_role`'s: the buyer, the creator, the scheduler
(`system`), the operator, a message's sender.
"""

from __future__ import annotations

from typing import Any

TEXTS: dict[tuple[str, str], str] = {
    ("new_order", "buyer"): "У вас новый заказ!",
    ("order_accepted", "creator"): "Креатор принял ваш заказ в работу.",
    ("order_updated", "buyer"): "Покупатель изменил условия заказа.",
    ("order_delivered", "creator"): "Креатор сдал работу по вашему заказу.",
    ("revision_requested", "buyer"): "Покупатель попросил доработать заказ.",
    ("order_completed", "buyer"): "Покупатель принял работу, заказ завершен.",
    ("order_completed", "system"): "Заказ завершен автоматически: срок проверки истек.",
    ("order_cancelled", "buyer"): "Покупатель отменил заказ.",
    ("order_cancelled", "creator"): "Креатор отменил заказ.",
    ("order_cancelled", "operator"): "Заказ отменен администратором.",
    ("new_review", "buyer"): "Покупатель оставил отзыв о вашей работе.",
    ("new_message", "sender"): "Новое сообщение от {sender_username}.",
}


# The lines that name something of their event; the others are shown as they are.
_FILLED_IN = frozenset(key for key, text in TEXTS.items() if "{" in text)


def line(kind: str, role: str, domain_event: Any) -> str:
    """The line a notification of type `kind` caused by `role` (`acting_role`) shows its recipient (a
    message's names its sender)."""
    key = (kind, role)
    return TEXTS[key].format_map(vars(domain_event)) if key in _FILLED_IN else TEXTS[key]
