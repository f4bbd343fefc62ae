"""docs/webhooks.md gives an endpoint as many delivery slots as `DeliverySettings` does, in
every place it counts them."""

import re
from pathlib import Path

from remit.webhooks.delivery import DeliverySettings

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


def test_the_guide_counts_an_endpoint_s_slots_as_the_settings_do() -> None:
    text = " ".join(GUIDE.read_text().split())
    slots = DeliverySettings().max_concurrent_per_endpoint
    assert f"An endpoint holds at most {slots} of them (its slots, below)" in text
    assert f"an endpoint that hangs holds {slots} delivery slots in all" in text
    assert f"At most {slots} attempts are in flight to one endpoint at once" in text
    assert f"one request more than the endpoint's {slots} slots allow" in text
    counted = re.findall(r"the endpoint's (\d+)\b", text)
    assert counted == [str(slots)]
