"""Issued invoices and their lines are frozen by the database itself, so no code path — a bulk
update, a raw query, a race between two requests — can change, delete or extend them.

PostgreSQL: trigger functions compare whole rows (a column added later is covered too) and take
a share lock on the invoice before a line is written, so a line waits for an invoice being
issued and is then refused. SQLite: triggers listing the invoice's columns (one writer at a
time, so no lock is needed); a column added to Invoice joins the list in a new migration.
SQLite's triggers guard updates and new lines but not deletes: SQLite empties a table with
DELETE (a test database's flush), which a trigger cannot tell from a deletion; deletes are
refused by the model and its query sets, and its writers take turns (IMMEDIATE transactions).
"""

from django.db import migrations

# Only the way an issued invoice ends may change: paid, or void by a credit note.
MUTABLE = ("status", "paid_at", "voided_at")
ALLOWED = (("issued", "paid"), ("issued", "void"), ("paid", "void"))
CHANGED = "An issued invoice cannot be changed; issue a credit note."
DELETED = "An issued invoice cannot be deleted; issue a credit note."
LINES = "Lines of an issued invoice cannot be added, changed or deleted."


def _postgresql(invoice: str, line: str, q) -> list[str]:
    moves = " OR ".join(f"(OLD.status = '{a}' AND NEW.status = '{b}')" for a, b in ALLOWED)
    mutable = " - ".join(f"'{name}'" for name in MUTABLE)
    return [f"""
CREATE OR REPLACE FUNCTION billing_invoice_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status <> 'draft' THEN
      RAISE EXCEPTION '{DELETED}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.status = 'draft' THEN
    IF NEW.status NOT IN ('draft', 'issued') THEN
      RAISE EXCEPTION 'A draft can only be issued.'
        USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
  END IF;
  IF NOT (NEW.status = OLD.status OR {moves})
     OR (to_jsonb(NEW) - {mutable}) IS DISTINCT FROM (to_jsonb(OLD) - {mutable}) THEN
    RAISE EXCEPTION '{CHANGED}' USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$""", f"""
CREATE TRIGGER billing_invoice_frozen BEFORE UPDATE OR DELETE ON {q(invoice)}
FOR EACH ROW EXECUTE FUNCTION billing_invoice_frozen()""", f"""
CREATE OR REPLACE FUNCTION billing_invoice_line_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent integer;
BEGIN
  FOREACH parent IN ARRAY (CASE TG_OP WHEN 'INSERT' THEN ARRAY[NEW.invoice_id]
                                      WHEN 'DELETE' THEN ARRAY[OLD.invoice_id]
                                      ELSE ARRAY[OLD.invoice_id, NEW.invoice_id] END) LOOP
    -- FOR SHARE: an invoice being issued is waited for, then seen issued.
    PERFORM 1 FROM {q(invoice)} WHERE id = parent AND status <> 'draft' FOR SHARE;
    IF FOUND THEN
      RAISE EXCEPTION '{LINES}' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
  END LOOP;
  RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$""", f"""
CREATE TRIGGER billing_invoice_line_frozen BEFORE INSERT OR UPDATE OR DELETE ON {q(line)}
FOR EACH ROW EXECUTE FUNCTION billing_invoice_line_frozen()"""]


def _sqlite(invoice: str, line: str, q, columns: list[str]) -> list[str]:
    moves = " OR ".join(f"(OLD.status = '{a}' AND NEW.status = '{b}')" for a, b in ALLOWED)
    changed = " OR ".join(f"NEW.{q(c)} IS NOT OLD.{q(c)}" for c in columns)

    def draft_is_not(side: str) -> str:
        return f"(SELECT status FROM {q(invoice)} WHERE id = {side}.invoice_id) <> 'draft'"

    return [f"""
CREATE TRIGGER billing_invoice_frozen_update BEFORE UPDATE ON {q(invoice)}
WHEN OLD.status <> 'draft' AND (NOT (NEW.status = OLD.status OR {moves}) OR {changed})
BEGIN SELECT RAISE(ABORT, '{CHANGED}'); END""", f"""
CREATE TRIGGER billing_invoice_draft_update BEFORE UPDATE ON {q(invoice)}
WHEN OLD.status = 'draft' AND NEW.status NOT IN ('draft', 'issued')
BEGIN SELECT RAISE(ABORT, 'A draft can only be issued.'); END""", f"""
CREATE TRIGGER billing_invoice_line_frozen_insert BEFORE INSERT ON {q(line)}
WHEN {draft_is_not("NEW")}
BEGIN SELECT RAISE(ABORT, '{LINES}'); END""", f"""
CREATE TRIGGER billing_invoice_line_frozen_update BEFORE UPDATE ON {q(line)}
WHEN {draft_is_not("OLD")} OR {draft_is_not("NEW")}
BEGIN SELECT RAISE(ABORT, '{LINES}'); END"""]


def freeze(apps, schema_editor) -> None:
    invoice = apps.get_model("billing", "Invoice")._meta
    line = apps.get_model("billing", "InvoiceLine")._meta
    q = schema_editor.quote_name
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = _postgresql(invoice.db_table, line.db_table, q)
    elif vendor == "sqlite":
        columns = [f.column for f in invoice.concrete_fields if f.attname not in MUTABLE]
        statements = _sqlite(invoice.db_table, line.db_table, q, columns)
    else:
        raise NotImplementedError(f"no invoice guard for {vendor}")
    for statement in statements:
        schema_editor.execute(statement)


def thaw(apps, schema_editor) -> None:
    invoice = apps.get_model("billing", "Invoice")._meta.db_table
    line = apps.get_model("billing", "InvoiceLine")._meta.db_table
    q = schema_editor.quote_name
    if schema_editor.connection.vendor == "postgresql":
        statements = [f"DROP TRIGGER IF EXISTS billing_invoice_frozen ON {q(invoice)}",
                      f"DROP TRIGGER IF EXISTS billing_invoice_line_frozen ON {q(line)}",
                      "DROP FUNCTION IF EXISTS billing_invoice_frozen()",
                      "DROP FUNCTION IF EXISTS billing_invoice_line_frozen()"]
    else:
        statements = [f"DROP TRIGGER IF EXISTS {name}" for name in (
            "billing_invoice_frozen_update", "billing_invoice_draft_update",
            "billing_invoice_line_frozen_insert", "billing_invoice_line_frozen_update")]
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0005_pricing_empty_sessions_corrected_energy"),
    ]

    operations = [migrations.RunPython(freeze, thaw)]
