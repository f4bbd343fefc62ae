"""The core database's table metadata; each service's `tables.py` adds its tables to it.

The vault and the acquirer have their own metadata objects in their own packages: they live in
other databases.
"""

from sqlalchemy import MetaData

# Constraint names fixed by convention so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

core_metadata = MetaData(naming_convention=NAMING_CONVENTION)
