"""``driver_statement``: a statement's SQL compiled once, its parameters in driver order."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from vincent.db.driver_statement import driver_statement, equals_any

_TABLE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("a", sa.Integer),
    sa.Column("b", sa.String),
    sa.Column("c", sa.JSON),
)


@pytest.mark.parametrize("dialect", [postgresql.asyncpg.dialect(), sqlite.dialect()])
def test_parameters_come_in_the_order_the_sql_takes_them(dialect: sa.Dialect) -> None:
    statement = (
        sa.update(_TABLE)
        .where(_TABLE.c.a == sa.bindparam("where_a"), _TABLE.c.b == "fixed")
        .values(c=sa.bindparam("new_c", type_=sa.JSON), b=sa.bindparam("new_b"))
    )
    driver = driver_statement(statement, dialect)
    params = driver.parameters({"where_a": 3, "new_c": {"x": 1}, "new_b": "y"})
    compiled = statement.compile(dialect=dialect)
    assert driver.sql == compiled.string
    assert compiled.positiontup is not None
    by_name = dict(zip(compiled.positiontup, params, strict=True))
    literal = next(name for name in compiled.positiontup if name.startswith("b_"))
    assert by_name == {"new_c": '{"x": 1}', "new_b": "y", "where_a": 3, literal: "fixed"}


def test_a_statement_rendered_at_execution_is_refused() -> None:
    # An IN of a list is expanded into the SQL at each execution: no SQL to compile once.
    statement = sa.select(_TABLE.c.a).where(_TABLE.c.a.in_([1, 2, 3]))
    with pytest.raises(ValueError, match="rendered at execution"):
        driver_statement(statement, postgresql.asyncpg.dialect())


def test_equals_any_compiles_once_with_its_values_in_the_statement() -> None:
    statement = sa.select(_TABLE.c.a).where(equals_any(_TABLE.c.a, (1, 2, 3)))
    driver = driver_statement(statement, postgresql.asyncpg.dialect())
    assert driver.parameters({}) == (1, 2, 3)  # the statement's own values, nothing to pass
