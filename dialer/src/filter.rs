//! Lead filters: field expressions such as `balance < 10`, `birthday = today` or
//! `contract_end within 60 days`, so a list can target reminders, retention and renewals.
//!
//! A [`Filter`] is parsed once and then either compiled to SQL (for the hopper, lead search
//! and export: the database does the work, whatever the list's size) or evaluated on one
//! [`Lead`] ([`Filter::matches`]); both give the same answer, which the tests check on
//! SQLite and PostgreSQL.
//!
//! Grammar (keywords in any case):
//!
//! ```text
//! expr  := and ("or" and)*
//! and   := unary ("and" unary)*
//! unary := "not" unary | "(" expr ")" | cond
//! cond  := field ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") value
//!        | field "within" ["last"] N "days"     -- today … today+N (or today−N … today)
//!        | field "contains" value               -- text, ignoring case
//!        | field "is" ["not"] "empty"           -- missing or blank
//! field := name | `quoted name` | lead.COLUMN    -- a custom field, or a lead column
//! value := number | 'text' | "text" | word | YYYY-MM-DD | today [(+|-) N [days]]
//! ```
//!
//! The value decides how a field is compared: a number compares numerically (a field that
//! is not a number does not match), a date or `today` compares dates (the first ten
//! characters of the field, `YYYY-MM-DD`), anything else compares as text. A missing
//! field matches no comparison (but `not (…)` of it does). `today` is the call centre's
//! date. Lead columns: `lead.name`, `lead.phone`, `lead.postal_code`, `lead.time_zone`,
//! `lead.state`, `lead.attempts`, `lead.last_outcome`.

use chrono::{Duration, NaiveDate};

use crate::store::{Backend, Lead};

/// Lead columns a filter may name as `lead.COLUMN`.
const COLUMNS: [&str; 7] = ["name", "phone", "postal_code", "time_zone", "state", "attempts", "last_outcome"];

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

/// Why a filter does not parse: the character offset and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter at character {at}: {reason}")]
pub struct FilterError {
    pub at: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp { field: Field, op: Op, value: Value },
    /// Dates from `today + from` to `today + to` days, inclusive.
    Within { field: Field, from: i64, to: i64 },
    Contains { field: Field, text: String },
    Empty { field: Field },
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Custom(String),
    Column(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Text(String),
    Date(NaiveDate),
    /// `today` plus this many days.
    Today(i64),
}

/// A value bound to a compiled filter's SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Number(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    /// A quoted string (`'…'` or `"…"`).
    Str(String),
    /// A backquoted field name.
    Ident(String),
    Num(f64),
    Sym(&'static str),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let fail = |at: usize, reason: String| Err(FilterError { at, reason });
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' || c == '`' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return fail(at, format!("{c} is not closed")),
                    Some(&(_, q)) if q == c => {
                        // A doubled quote stands for itself.
                        if chars.get(i + 1).map(|x| x.1) == Some(c) {
                            text.push(c);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    Some(&(_, ch)) => {
                        text.push(ch);
                        i += 1;
                    }
                }
            }
            out.push((at, if c == '`' { Tok::Ident(text) } else { Tok::Str(text) }));
            continue;
        }
        let two: String = chars[i..].iter().take(2).map(|x| x.1).collect();
        if let Some(sym) = ["!=", "<>", "<=", ">="].into_iter().find(|s| *s == two) {
            out.push((at, Tok::Sym(sym)));
            i += 2;
            continue;
        }
        if let Some(sym) = ["=", "<", ">", "(", ")", "+", "-"].into_iter().find(|s| s.starts_with(c)) {
            // A sign directly before a digit (after an operator) is part of the number.
            let number_follows = chars.get(i + 1).is_some_and(|x| x.1.is_ascii_digit() || x.1 == '.');
            let after_op = matches!(out.last(), Some((_, Tok::Sym(s))) if *s != ")");
            if !((c == '-' || c == '+') && number_follows && after_op) {
                out.push((at, Tok::Sym(sym)));
                i += 1;
                continue;
            }
        }
        let start = i;
        while i < chars.len() && !chars[i].1.is_whitespace() && !"=!<>()'\"`".contains(chars[i].1) {
            if i > start && (chars[i].1 == '+' || chars[i].1 == '-') && !chars[start].1.is_ascii_digit() && chars[start].1 != '-' && chars[start].1 != '+' {
                break;
            }
            i += 1;
        }
        if i == start {
            return fail(at, format!("unexpected {c:?}"));
        }
        let word: String = chars[start..i].iter().map(|x| x.1).collect();
        let tok = if looks_numeric(&word) { Tok::Num(word.parse().map_err(|_| FilterError { at, reason: format!("{word:?} is not a number") })?) } else { Tok::Word(word) };
        out.push((at, tok));
    }
    Ok(out)
}

/// `[+-]?` digits with at most one `.`, at least one digit: the same rule the SQL uses.
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    body.bytes().all(|b| b.is_ascii_digit() || b == b'.') && body.bytes().any(|b| b.is_ascii_digit()) && body.bytes().filter(|&b| b == b'.').count() <= 1
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.0)
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError { at: self.at(), reason: reason.into() })
    }

    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some((_, Tok::Word(x))) if x.eq_ignore_ascii_case(w))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.peek_word(w);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        let yes = matches!(self.toks.get(self.pos), Some((_, Tok::Sym(x))) if *x == s);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.eat_word("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat_sym("(") {
            let e = self.expr()?;
            if !self.eat_sym(")") {
                return self.fail("expected )");
            }
            return Ok(e);
        }
        self.cond()
    }

    fn field(&mut self) -> Result<Field, FilterError> {
        let f = match self.toks.get(self.pos).map(|t| t.1.clone()) {
            Some(Tok::Ident(name)) if !name.is_empty() && !name.contains(['"', '\\']) => Field::Custom(name),
            // `get`, not slicing: a word may hold multi-byte characters (found by fuzzing).
            Some(Tok::Word(w)) if w.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("lead.")) && w.len() > 5 => match COLUMNS.iter().find(|c| c.eq_ignore_ascii_case(&w[5..])) {
                Some(c) => Field::Column(c),
                None => return self.fail(format!("{w:?}: lead columns are {}", COLUMNS.map(|c| format!("lead.{c}")).join(", "))),
            },
            Some(Tok::Word(w)) if w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !w.as_bytes()[0].is_ascii_digit() => Field::Custom(w),
            Some(t) => return self.fail(format!("expected a field name, found {t:?}")),
            None => return self.fail("expected a field name"),
        };
        self.pos += 1;
        Ok(f)
    }

    fn cond(&mut self) -> Result<Expr, FilterError> {
        let field = self.field()?;
        if self.eat_word("within") {
            let past = self.eat_word("last");
            let n = self.days_count()?;
            if !self.eat_word("days") && !self.eat_word("day") {
                return self.fail("expected days");
            }
            let (from, to) = if past { (-n, 0) } else { (0, n) };
            return Ok(Expr::Within { field, from, to });
        }
        if self.eat_word("contains") {
            return match self.value()? {
                Value::Text(text) => Ok(Expr::Contains { field, text }),
                _ => self.fail("contains takes text"),
            };
        }
        if self.eat_word("is") {
            let negated = self.eat_word("not");
            if !self.eat_word("empty") {
                return self.fail("expected empty");
            }
            let e = Expr::Empty { field };
            return Ok(if negated { Expr::Not(Box::new(e)) } else { e });
        }
        let op = match self.toks.get(self.pos) {
            Some((_, Tok::Sym("="))) => Op::Eq,
            Some((_, Tok::Sym("!=" | "<>"))) => Op::Ne,
            Some((_, Tok::Sym("<"))) => Op::Lt,
            Some((_, Tok::Sym("<="))) => Op::Le,
            Some((_, Tok::Sym(">"))) => Op::Gt,
            Some((_, Tok::Sym(">="))) => Op::Ge,
            _ => return self.fail("expected =, !=, <, <=, >, >=, within, contains or is"),
        };
        self.pos += 1;
        Ok(Expr::Cmp { field, op, value: self.value()? })
    }

    fn days_count(&mut self) -> Result<i64, FilterError> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Num(n))) if n.fract() == 0.0 && (0.0..=36_500.0).contains(n) => {
                self.pos += 1;
                Ok(*n as i64)
            }
            _ => self.fail("expected a whole number of days (0 to 36500)"),
        }
    }

    fn value(&mut self) -> Result<Value, FilterError> {
        let Some((_, tok)) = self.toks.get(self.pos).cloned() else { return self.fail("expected a value") };
        self.pos += 1;
        Ok(match tok {
            Tok::Num(n) => Value::Number(n),
            Tok::Str(s) => Value::Text(s),
            Tok::Word(w) if w.eq_ignore_ascii_case("today") => {
                let sign = if self.eat_sym("+") {
                    1
                } else if self.eat_sym("-") {
                    -1
                } else {
                    return Ok(Value::Today(0));
                };
                let n = self.days_count()?;
                let _ = self.eat_word("days") || self.eat_word("day");
                Value::Today(sign * n)
            }
            Tok::Word(w) => match NaiveDate::parse_from_str(&w, "%Y-%m-%d") {
                Ok(d) if w.len() == 10 => Value::Date(d),
                _ if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or") => {
                    self.pos -= 1;
                    return self.fail("expected a value");
                }
                _ => Value::Text(w),
            },
            other => {
                self.pos -= 1;
                return self.fail(format!("expected a value, found {other:?}"));
            }
        })
    }
}

impl Filter {
    /// Parse an expression; the error names the character where it went wrong.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > 4000 {
            return Err(FilterError { at: 4000, reason: "longer than 4000 characters".into() });
        }
        let toks = lex(text)?;
        if toks.is_empty() {
            return Err(FilterError { at: 0, reason: "the filter is empty".into() });
        }
        let mut p = Parser { toks, pos: 0, end: text.len() };
        let expr = p.expr()?;
        if p.pos < p.toks.len() {
            return p.fail("expected and, or or the end");
        }
        Ok(Filter { expr })
    }

    /// The filter as a SQL condition over the `leads` table, for `backend`, with `today` the
    /// call centre's date. Parameters are numbered from `$first`; bind the returned values in order.
    pub fn to_sql(&self, backend: Backend, today: NaiveDate, first: usize) -> (String, Vec<Bind>) {
        let mut c = Compiler { backend, today, next: first, binds: Vec::new() };
        let sql = c.expr(&self.expr);
        (sql, c.binds)
    }

    /// Whether one lead matches (the same answer the SQL gives).
    pub fn matches(&self, lead: &Lead, today: NaiveDate) -> bool {
        eval(&self.expr, lead, today)
    }
}

struct Compiler {
    backend: Backend,
    today: NaiveDate,
    next: usize,
    binds: Vec<Bind>,
}

impl Compiler {
    fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        self.next += 1;
        format!("${}", self.next - 1)
    }

    /// The field as trimmed text (NULL when missing).
    fn text(&mut self, f: &Field) -> String {
        match (f, self.backend) {
            (Field::Column(c), _) => format!("TRIM(CAST({c} AS TEXT))"),
            (Field::Custom(name), Backend::Sqlite) => {
                let p = self.bind(Bind::Text(format!("$.\"{name}\"")));
                format!("TRIM(CAST(json_extract(fields, {p}) AS TEXT))")
            }
            (Field::Custom(name), Backend::Postgres) => {
                let p = self.bind(Bind::Text(name.clone()));
                format!("BTRIM(fields::json ->> CAST({p} AS TEXT))")
            }
        }
    }

    fn number(&mut self, f: &Field) -> String {
        let t = self.text(f);
        match self.backend {
            // No regular expressions in SQLite: the GLOBs spell out [+-]?digits with one dot.
            Backend::Sqlite => format!(
                "(CASE WHEN {t} <> '' AND {t} NOT GLOB '*[^0-9.+-]*' AND {t} GLOB '*[0-9]*' AND substr({t}, 2) NOT GLOB '*[+-]*' \
                 AND {t} NOT GLOB '*.*.*' THEN CAST({t} AS REAL) END)"
            ),
            Backend::Postgres => format!("(CASE WHEN {t} ~ '^[-+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)$' THEN CAST({t} AS DOUBLE PRECISION) END)"),
        }
    }

    fn date(&mut self, f: &Field) -> String {
        let t = self.text(f);
        let d = format!("substr({t}, 1, 10)");
        match self.backend {
            Backend::Sqlite => format!("(CASE WHEN {d} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN {d} END)"),
            Backend::Postgres => format!("(CASE WHEN {d} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN {d} END)"),
        }
    }

    fn expr(&mut self, e: &Expr) -> String {
        match e {
            Expr::And(a, b) => format!("({} AND {})", self.expr(a), self.expr(b)),
            Expr::Or(a, b) => format!("({} OR {})", self.expr(a), self.expr(b)),
            Expr::Not(a) => format!("(NOT {})", self.expr(a)),
            // Every atom is two-valued (a missing field is false, not NULL), so NOT works
            // the way a manager reads it.
            atom => format!("COALESCE({}, FALSE)", self.atom(atom)),
        }
    }

    fn atom(&mut self, e: &Expr) -> String {
        let sym = |op: Op| match op {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        };
        // Byte order for text on both databases (PostgreSQL would use the locale's).
        let collate = if self.backend == Backend::Postgres { " COLLATE \"C\"" } else { "" };
        match e {
            Expr::Cmp { field, op, value: Value::Number(n) } => {
                let l = self.number(field);
                format!("{l} {} {}", sym(*op), self.bind(Bind::Number(*n)))
            }
            Expr::Cmp { field, op, value: Value::Text(s) } => {
                let l = self.text(field);
                format!("{l}{collate} {} {}", sym(*op), self.bind(Bind::Text(s.clone())))
            }
            Expr::Cmp { field, op, value: v @ (Value::Date(_) | Value::Today(_)) } => {
                let d = date_of(v, self.today).format("%Y-%m-%d").to_string();
                let l = self.date(field);
                format!("{l}{collate} {} {}", sym(*op), self.bind(Bind::Text(d)))
            }
            Expr::Within { field, from, to } => {
                let l = self.date(field);
                let a = self.bind(Bind::Text((self.today + Duration::days(*from)).format("%Y-%m-%d").to_string()));
                let b = self.bind(Bind::Text((self.today + Duration::days(*to)).format("%Y-%m-%d").to_string()));
                format!("({l}{collate} >= {a} AND {l}{collate} <= {b})")
            }
            Expr::Contains { field, text } => {
                let l = self.text(field);
                let p = self.bind(Bind::Text(text.to_lowercase()));
                let f = if self.backend == Backend::Postgres { "strpos" } else { "instr" };
                format!("{f}(lower({l}), {p}) > 0")
            }
            Expr::Empty { field } => format!("COALESCE({}, '') = ''", self.text(field)),
            Expr::And(..) | Expr::Or(..) | Expr::Not(..) => self.expr(e),
        }
    }
}

fn date_of(v: &Value, today: NaiveDate) -> NaiveDate {
    match v {
        Value::Date(d) => *d,
        Value::Today(n) => today + Duration::days(*n),
        _ => today,
    }
}

fn field_text(f: &Field, lead: &Lead) -> Option<String> {
    let s = match f {
        Field::Custom(name) => match lead.fields.get(name)? {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => return None,
            other => other.to_string(),
        },
        Field::Column("name") => lead.name.clone(),
        Field::Column("phone") => lead.phone.clone(),
        Field::Column("postal_code") => lead.postal_code.clone()?,
        Field::Column("time_zone") => lead.time_zone.clone()?,
        Field::Column("state") => lead.state.as_str().to_string(),
        Field::Column("attempts") => lead.attempts.to_string(),
        Field::Column("last_outcome") => lead.last_outcome.clone()?,
        Field::Column(_) => return None,
    };
    Some(s.trim_matches(' ').to_string())
}

fn field_date(f: &Field, lead: &Lead) -> Option<String> {
    let t = field_text(f, lead)?;
    let d: String = t.chars().take(10).collect();
    let b = d.as_bytes();
    let ok = b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    ok.then_some(d)
}

fn eval(e: &Expr, lead: &Lead, today: NaiveDate) -> bool {
    let cmp = |o: std::cmp::Ordering, op: Op| match op {
        Op::Eq => o.is_eq(),
        Op::Ne => o.is_ne(),
        Op::Lt => o.is_lt(),
        Op::Le => o.is_le(),
        Op::Gt => o.is_gt(),
        Op::Ge => o.is_ge(),
    };
    match e {
        Expr::And(a, b) => eval(a, lead, today) && eval(b, lead, today),
        Expr::Or(a, b) => eval(a, lead, today) || eval(b, lead, today),
        Expr::Not(a) => !eval(a, lead, today),
        Expr::Cmp { field, op, value: Value::Number(n) } => field_text(field, lead)
            .filter(|t| looks_numeric(t))
            .and_then(|t| t.parse::<f64>().ok())
            .and_then(|v| v.partial_cmp(n))
            .is_some_and(|o| cmp(o, *op)),
        Expr::Cmp { field, op, value: Value::Text(s) } => field_text(field, lead).is_some_and(|t| cmp(t.as_str().cmp(s.as_str()), *op)),
        Expr::Cmp { field, op, value: v } => {
            let d = date_of(v, today).format("%Y-%m-%d").to_string();
            field_date(field, lead).is_some_and(|t| cmp(t.cmp(&d), *op))
        }
        Expr::Within { field, from, to } => {
            let a = (today + Duration::days(*from)).format("%Y-%m-%d").to_string();
            let b = (today + Duration::days(*to)).format("%Y-%m-%d").to_string();
            field_date(field, lead).is_some_and(|t| t >= a && t <= b)
        }
        Expr::Contains { field, text } => field_text(field, lead).is_some_and(|t| t.to_lowercase().contains(&text.to_lowercase())),
        Expr::Empty { field } => field_text(field, lead).is_none_or(|t| t.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead_state::LeadState;

    fn lead(fields: serde_json::Value) -> Lead {
        Lead {
            id: 1,
            list_id: 1,
            campaign_id: 1,
            phone: "+14155550100".into(),
            alt_phones: vec![],
            name: "Ann Smith".into(),
            time_zone: None,
            postal_code: Some("94110".into()),
            fields: fields.as_object().cloned().unwrap_or_default(),
            state: LeadState::Retry,
            attempts: 2,
            next_due_at: None,
            owner_agent_id: None,
            lease_owner: None,
            lease_until: None,
            last_outcome: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_examples_from_the_issue() {
        let today = day("2025-06-14");
        let l = lead(serde_json::json!({"balance": "7.50", "birthday": "2025-06-14", "contract_end": "2025-07-30", "plan": "Gold"}));
        for (f, want) in [
            ("balance < 10", true),
            ("balance >= 10", false),
            ("birthday = today", true),
            ("birthday = today + 1", false),
            ("contract_end within 60 days", true),
            ("contract_end within 30 days", false),
            ("contract_end within last 30 days", false),
            ("contract_end > today + 45 days", true),
            ("plan = Gold and balance < 10", true),
            ("plan = 'gold' or balance > 100", false),
            ("not (plan = Gold)", false),
            ("plan contains OL", true),
            ("missing is empty and plan is not empty", true),
            ("not missing = x", true),
            ("missing != x", false),
            ("lead.attempts < 3 and lead.state = retry", true),
            ("lead.postal_code = '94110'", true),
            ("lead.name contains smith", true),
            ("`plan` = \"Gold\"", true),
            ("balance > -1", true),
            ("birthday <= 2025-06-13", false),
        ] {
            assert_eq!(Filter::parse(f).unwrap().matches(&l, today), want, "{f}");
        }
    }

    #[test]
    fn numbers_and_dates_need_the_right_shape() {
        let today = day("2025-01-01");
        let l = lead(serde_json::json!({"a": "12abc", "b": "1.2.3", "c": "+.5", "d": 3, "e": "2025/01/01", "f": "2025-01-01T09:00"}));
        let m = |f: &str| Filter::parse(f).unwrap().matches(&l, today);
        assert!(!m("a < 100") && !m("a >= 0"));
        assert!(!m("b > 0"));
        assert!(m("c = 0.5"));
        assert!(m("d = 3"));
        assert!(!m("e = today"));
        assert!(m("f = today"));
    }

    #[test]
    fn bad_filters_say_where() {
        for (f, at) in [("", 0), ("balance <", 9), ("balance < 10 and", 16), ("(a = 1", 6), ("a within 5", 10), ("lead.colour = 1", 0), ("a = 'x", 4), ("a ~ 1", 2), ("1a = 2", 0)] {
            let e = Filter::parse(f).unwrap_err();
            assert_eq!(e.at, at, "{f}: {e}");
        }
    }

    #[test]
    fn multi_byte_words_are_refused_not_sliced() {
        // Found by fuzzing: a word of five bytes that are not five characters.
        assert!(Filter::parse("\u{10}\u{4}\0nĺ= tru >==n\0\0\0 ").is_err());
        assert!(Filter::parse("leaĺ = 1").is_err());
    }

    #[test]
    fn sql_binds_every_value() {
        let f = Filter::parse("plan = 'x''y' and balance < 5 and due within 7 days").unwrap();
        let (sql, binds) = f.to_sql(Backend::Postgres, day("2025-01-01"), 3);
        assert!(!sql.contains("x'y") && sql.contains("$3") && sql.contains("$9"), "{sql}");
        assert_eq!(binds.len(), 7);
        assert_eq!(binds[1], Bind::Text("x'y".into()));
        assert_eq!(binds[6], Bind::Text("2025-01-08".into()));
    }
}
