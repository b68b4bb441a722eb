//! What the compiler knows about the database: bound tables and their columns, mapped fields, levels
//! and saved segments. The pgrx layer fills it from one catalog query (`kenbun._catalog()`); tests
//! build it by hand.
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Lead,
    Account,
    Event,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Account => "account",
            Kind::Event => "event",
        }
    }
    pub fn from_name(s: &str) -> Option<Kind> {
        match s {
            "lead" => Some(Kind::Lead),
            "account" => Some(Kind::Account),
            "event" => Some(Kind::Event),
            _ => None,
        }
    }
    pub fn bind_function(self) -> &'static str {
        match self {
            Kind::Lead => "kenbun.bind_leads",
            Kind::Account => "kenbun.bind_accounts",
            Kind::Event => "kenbun.bind_events",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    /// `format_type(atttypid, NULL)` under search_path pg_catalog: schema-qualified outside pg_catalog.
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default)]
    pub not_null: bool,
    /// The column's type is not built in (not in pg_catalog, after resolving domains): the compiler
    /// reads it as `column::text` and never casts anything to it. Generated triggers run as the
    /// extension's owner, so a cast to a user-defined type (a domain's CHECK, say) would run user
    /// code with the owner's rights.
    #[serde(default)]
    pub as_text: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Binding {
    pub kind: String,
    pub schema: String,
    pub table: String,
    /// Primary key of leads / accounts.
    pub key: Option<String>,
    /// Leads: the column holding the account's key.
    pub account_key: Option<String>,
    /// Events: the lead key, type, time and metadata columns.
    pub lead_key: Option<String>,
    pub type_column: Option<String>,
    pub time_column: Option<String>,
    pub metadata_column: Option<String>,
    pub columns: Vec<Column>,
}

impl Binding {
    /// A column reference under `alias`, as text when the column's type is not built in.
    pub fn column_sql(&self, alias: &str, c: &Column) -> String {
        let r = format!("{alias}.{}", super::sql::ident(&c.name));
        if c.as_text {
            format!("({r})::text")
        } else {
            r
        }
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn qualified(&self) -> String {
        format!("{}.{}", super::sql::ident(&self.schema), super::sql::ident(&self.table))
    }
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FieldMap {
    pub kind: String,
    pub name: String,
    pub path: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// The mapped type is built in (pg_catalog); fields of other types are refused (see Column::as_text).
    #[serde(default = "yes")]
    pub builtin: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Tier {
    pub name: String,
    pub min: serde_json::Number,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Level {
    pub name: String,
    pub field: String,
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SegmentDef {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// Null for a static segment without a rule.
    #[serde(default)]
    pub rule: serde_json::Value,
    /// A static segment: a hand-kept list (`kenbun.segment_add`), never evaluated from its rule.
    #[serde(default, rename = "static")]
    pub is_static: bool,
    /// The segment has manual overrides (`kenbun.member_overrides`): its rule is wrapped so that an
    /// included member is in and an excluded one out, whatever the rule says.
    #[serde(default)]
    pub overrides: bool,
}

impl SegmentDef {
    pub fn dynamic(id: i64, name: &str, kind: Kind, rule: serde_json::Value) -> SegmentDef {
        SegmentDef { id, name: name.to_string(), kind: kind.name().to_string(), rule, is_static: false, overrides: false }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Catalog {
    #[serde(default)]
    pub bindings: Vec<Binding>,
    #[serde(default)]
    pub fields: Vec<FieldMap>,
    #[serde(default)]
    pub levels: Vec<Level>,
    #[serde(default)]
    pub segments: Vec<SegmentDef>,
    /// The time zone of calendar operators (`in_period`) whose condition names none: the pgrx
    /// layer fills it from the `kenbun.timezone` setting, else the session's TimeZone. None: UTC.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl Catalog {
    pub fn binding(&self, kind: Kind) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.kind == kind.name())
    }
}
