"""2019-10-17: a Customer's `account_balance` is called `balance`."""

from remit.core.jsonview import JsonObject
from remit.versioning.change import RenderContext, VersionChange
from remit.versioning.schema_edit import rename_property


class RenameCustomerAccountBalance(VersionChange):
    """Customer `account_balance` is renamed `balance`. Stripe renamed the create and update
    parameter too; remit accepts neither name (a customer's balance is always 0), so only
    responses change.

    Source: https://docs.stripe.com/changelog/2019-10-17/renames-account-balance-customer-object
    """

    resources = ("customer",)
    fields = ("balance",)
    adds_back = ("account_balance",)

    def downgrade(self, obj: JsonObject, context: RenderContext) -> None:
        if "balance" in obj:
            obj["account_balance"] = obj.pop("balance")

    def downgrade_schema(self, schemas: dict[str, JsonObject]) -> None:
        rename_property(schemas, "customer", "balance", "account_balance")
