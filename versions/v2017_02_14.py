"""2017-02-14: Charges stop showing the Radar rule that decided them expanded unless asked."""

from typing import Final

from remit.core.jsonview import JsonObject
from remit.versioning.change import RelatedObject, RenderContext, VersionChange

# As it was when it decided the charge (remit.radar.decided), found by both ids.
RULE_OF_CHARGE: Final = RelatedObject(resource="rule", field="outcome.rule", as_of_parent=True)


class StopAutoexpandingChargeOutcomeRule(VersionChange):
    """Charge `outcome.rule` is the id of the Radar rule that decided the charge, expanded only
    when asked (`expand[]=outcome.rule`); before 2017-02-14 it was always the rule itself, as it
    was when it decided the charge. A rule deleted since stays an id at every version.

    Stripe's same version also stopped auto-expanding a charge's `dispute`. The latest charge
    has no `dispute` field, as Stripe's has none: it shows `disputed`, and the dispute is
    found with `GET /v1/disputes?charge=`. With no version that brings the field back, there
    is nothing for this one to expand.

    Source: https://stripe.com/blog/api-versioning (the change `AutoexpandChargeRule`; Stripe
    published no changelog page for it)
    """

    resources = ("charge",)
    fields = ("outcome.rule",)
    needs = (RULE_OF_CHARGE,)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        outcome = obj.get("outcome")
        if not isinstance(obj.get("id"), str) or not isinstance(outcome, dict):
            return  # not a whole charge (no id), or a charge without an outcome
        rule = context.related_object(RULE_OF_CHARGE, obj)
        if rule is not None:
            obj["outcome"] = {**outcome, "rule": rule}

    # No `downgrade_schema`: the latest schema's `outcome.rule` is already an id or the rule
    # (being expandable), which is what this version shows.
