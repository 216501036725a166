//! The browser app's API types (`web/src/api.ts`, written by hand) checked
//! against the OpenAPI document the server publishes: every call the app
//! makes is a documented route, every field the app reads is one the
//! server describes, and every field the server always sends is known to
//! the app, down through nested types.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::helpers::*;

/// Calls whose JSON answer the OpenAPI document does not describe yet (the
/// handlers' `responses(...)` name a status without a body), so their
/// types cannot be checked; the test fails once one is described, to take
/// it off this list.
const UNDOCUMENTED_ANSWERS: &[&str] = &[
    "createMeeting",
    "updateMeeting",
    "addSection",
    "changeSection",
    "reorder",
    "agencies",
];

/// A TypeScript object type: its fields and whether each is optional.
#[derive(Debug, Default, Clone)]
struct TsType {
    fields: BTreeMap<String, (bool, String)>,
}

/// Splits `text` at `sep` where no bracket is open.
fn split_top(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '{' | '(' | '[' | '<' => depth += 1,
            '}' | ')' | ']' | '>' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 {
            parts.push(String::new());
        } else {
            parts.last_mut().unwrap().push(c);
        }
    }
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The fields of an inline object type's body (`a: string; b?: number`).
fn inline_fields(body: &str, into: &mut TsType) {
    for part in split_top(body, ';').iter().flat_map(|p| split_top(p, '\n')) {
        let part = part.trim();
        if part.starts_with("/*") || part.starts_with('*') || part.starts_with("//") {
            continue;
        }
        let Some((name, ty)) = part.split_once(':') else {
            continue;
        };
        let optional = name.trim().ends_with('?');
        let name = name.trim().trim_end_matches('?').trim();
        if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty() {
            into.fields
                .insert(name.to_string(), (optional, ty.trim().to_string()));
        }
    }
}

/// Without its comments: `/** … */` blocks and `// …` line ends.
fn without_comments(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i..].split_once("*/").map_or("", |(_, r)| r);
    }
    out.push_str(rest);
    out.lines()
        .map(|l| match l.find("// ") {
            Some(i) if !l[..i].contains('\'') && !l[..i].contains('`') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The interfaces of api.ts by name, `extends` resolved.
fn interfaces(source: &str) -> BTreeMap<String, TsType> {
    let mut found: BTreeMap<String, (Option<String>, TsType)> = BTreeMap::new();
    let mut rest = source;
    while let Some(i) = rest.find("export interface ") {
        rest = &rest[i + "export interface ".len()..];
        let (head, body) = rest.split_once('{').unwrap();
        let end = body.find("\n}").unwrap();
        let mut words = head.split_whitespace();
        let name = words.next().unwrap().to_string();
        let parent = (words.next() == Some("extends")).then(|| words.next().unwrap().to_string());
        let mut ty = TsType::default();
        inline_fields(&body[..end], &mut ty);
        found.insert(name, (parent, ty));
        rest = &body[end..];
    }
    let mut resolved = BTreeMap::new();
    for (name, (parent, ty)) in &found {
        let mut all = parent
            .as_ref()
            .map(|p| found[p].1.clone())
            .unwrap_or_default();
        all.fields.extend(ty.fields.clone());
        resolved.insert(name.clone(), all);
    }
    resolved
}

/// A TypeScript type expression as an object type, if it is one: a named
/// interface, an inline `{ … }`, their intersection, `[]` or `| null` around.
fn object_type(expr: &str, named: &BTreeMap<String, TsType>) -> Option<TsType> {
    let expr = expr.trim();
    let expr = expr.strip_suffix("| null").unwrap_or(expr).trim();
    let expr = expr.strip_suffix("[]").unwrap_or(expr).trim();
    let mut out = TsType::default();
    let mut any = false;
    for part in split_top(expr, '&') {
        let part = part.trim();
        if let Some(body) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            inline_fields(body, &mut out);
            any = true;
        } else if let Some(ty) = named.get(part) {
            out.fields.extend(ty.fields.clone());
            any = true;
        } else {
            return None;
        }
    }
    any.then_some(out)
}

/// One call of the app: method, path (parameters as `{}`), response and
/// body types as written.
#[derive(Debug)]
struct Call {
    name: String,
    method: String,
    path: String,
    response: String,
    body: Option<String>,
}

fn calls(source: &str) -> Vec<Call> {
    let block = source
        .split_once("export const api = {")
        .unwrap()
        .1
        .split_once("\n}")
        .unwrap()
        .0;
    // The text up to the bracket that closes the one just opened.
    fn enclosed(text: &str, open: char, close: char) -> (&str, &str) {
        let mut depth = 0;
        for (i, c) in text.char_indices() {
            if c == open {
                depth += 1;
            } else if c == close {
                if depth == 0 {
                    return (&text[..i], &text[i + 1..]);
                }
                depth -= 1;
            }
        }
        panic!("no closing {close} in {text}")
    }
    let mut found = Vec::new();
    let mut rest = block;
    while let Some(i) = rest.find("request<") {
        let (response, after) = enclosed(&rest[i + "request<".len()..], '<', '>');
        let (args, after) = enclosed(after.strip_prefix('(').unwrap(), '(', ')');
        rest = after;
        let args = split_top(args, ',');
        let method = args[0].trim().trim_matches('\'').to_string();
        let path = args[1]
            .trim()
            .replace("${meeting(id)}", "/api/meetings/{}")
            .replace("meeting(id)", "/api/meetings/{}");
        let mut path = path.trim_matches(|c| c == '\'' || c == '`').to_string();
        while let Some(i) = path.find("${") {
            let end = i + path[i..].find('}').unwrap();
            path.replace_range(i..=end, "{}");
        }
        found.push(Call {
            name: String::new(),
            method,
            path,
            response: response.trim().to_string(),
            body: args.get(2).map(|b| b.trim().to_string()),
        });
    }
    // The entries' names, in the same order.
    let names: Vec<String> = block
        .lines()
        .filter_map(|l| l.trim().split_once(": (").map(|(n, _)| n.to_string()))
        .collect();
    assert_eq!(names.len(), found.len(), "{names:?}");
    for (call, name) in found.iter_mut().zip(names) {
        call.name = name;
    }
    found
}

/// The object schema behind `schema`: its properties (schema by name), the
/// required ones, and whether it is open (an object whose properties the
/// document does not list, so fields cannot be checked against it).
struct Shape {
    properties: BTreeMap<String, Value>,
    required: BTreeSet<String>,
    open: bool,
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(
            doc,
            &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        ),
        None => schema,
    }
}

/// The object inside a schema that may be wrapped in an array or a null.
fn object_schema<'a>(doc: &'a Value, schema: &'a Value) -> Option<&'a Value> {
    let schema = resolve(doc, schema);
    if let Some(items) = schema.get("items") {
        return object_schema(doc, items);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            return options.iter().find_map(|o| object_schema(doc, o));
        }
    }
    let object = schema.get("properties").is_some()
        || schema.get("allOf").is_some()
        || schema["type"] == "object"
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "object"));
    object.then_some(schema)
}

fn shape(doc: &Value, schema: &Value) -> Shape {
    let mut out = Shape {
        properties: BTreeMap::new(),
        required: BTreeSet::new(),
        open: false,
    };
    let schema = resolve(doc, schema);
    if let Some(parts) = schema["allOf"].as_array() {
        for part in parts {
            let inner = shape(doc, part);
            out.properties.extend(inner.properties);
            out.required.extend(inner.required);
            out.open |= inner.open;
        }
        return out;
    }
    match schema["properties"].as_object() {
        Some(properties) => {
            for (name, value) in properties {
                out.properties.insert(name.clone(), value.clone());
            }
        }
        None => out.open = true,
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        out.required.insert(name.as_str().unwrap().to_string());
    }
    out
}

/// Compares an app type with a schema, recursing into nested objects, and
/// notes what differs (`at` names the place).
fn compare(
    doc: &Value,
    at: &str,
    ty: &TsType,
    schema: &Value,
    named: &BTreeMap<String, TsType>,
    strict_required: bool,
    wrong: &mut Vec<String>,
) {
    let shape = shape(doc, schema);
    if strict_required {
        for name in &shape.required {
            if !ty.fields.contains_key(name) {
                wrong.push(format!(
                    "{at}: the server always sends `{name}`, the app's type lacks it"
                ));
            }
        }
    }
    for (name, (_, expr)) in &ty.fields {
        match shape.properties.get(name) {
            None if !shape.open => wrong.push(format!(
                "{at}: the app's type has `{name}`, the server's document does not"
            )),
            None => {}
            Some(property) => {
                if let (Some(inner), Some(schema)) =
                    (object_type(expr, named), object_schema(doc, property))
                {
                    let at = format!("{at}.{name}");
                    compare(doc, &at, &inner, schema, named, strict_required, wrong);
                }
            }
        }
    }
}

fn documented_operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let plain = |p: &str| {
        let mut out = String::new();
        let mut inside = false;
        for c in p.chars() {
            match c {
                '{' => {
                    inside = true;
                    out.push_str("{}");
                }
                '}' => inside = false,
                _ if inside => {}
                _ => out.push(c),
            }
        }
        out
    };
    let (_, item) = doc["paths"]
        .as_object()?
        .iter()
        .find(|(documented, _)| plain(documented) == path)?;
    item.get(method.to_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_apps_api_types_match_the_openapi_document() {
    init_logs();
    let db = TestDb::new(Backend::Sqlite).await;
    let server = TestServer::start(&db).await;
    let doc = get_json(&reqwest::Client::new(), server.http("/api/openapi.json")).await;
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/src/api.ts")).unwrap();
    let source = without_comments(&source);
    let named = interfaces(&source);
    let calls = calls(&source);
    assert!(calls.len() >= 20, "{calls:?}");
    assert!(named.contains_key("MeetingView"), "{:?}", named.keys());

    let mut wrong = Vec::new();
    for call in &calls {
        let at = format!("api.{} ({} {})", call.name, call.method, call.path);
        let Some(operation) = documented_operation(&doc, &call.method, &call.path) else {
            wrong.push(format!("{at}: no such route in the OpenAPI document"));
            continue;
        };
        let ok = operation["responses"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(status, _)| status.starts_with('2'))
            .map(|(_, r)| r);
        let response_schema = ok.and_then(|r| r.pointer("/content/application~1json/schema"));
        if UNDOCUMENTED_ANSWERS.contains(&call.name.as_str()) && response_schema.is_some() {
            wrong.push(format!(
                "{at}: now documented; take it off UNDOCUMENTED_ANSWERS so it is checked"
            ));
        }
        match (object_type(&call.response, &named), response_schema) {
            (Some(ty), Some(schema)) => match object_schema(&doc, schema) {
                Some(object) => compare(&doc, &at, &ty, object, &named, true, &mut wrong),
                None => wrong.push(format!("{at}: the server answers no object")),
            },
            (Some(_), None) if UNDOCUMENTED_ANSWERS.contains(&call.name.as_str()) => {}
            (Some(_), None) => wrong.push(format!("{at}: the server documents no JSON answer")),
            (None, Some(_)) if call.response == "void" => wrong.push(format!(
                "{at}: the app expects no body, the server sends one"
            )),
            (None, _) => {}
        }
        // What the app sends must be what the route takes.
        let body = call.body.as_deref().map(|b| match b.trim() {
            "input" => call_input_type(&source, &call.name),
            other => other.to_string(),
        });
        if let Some(body) = body {
            let schema = operation.pointer("/requestBody/content/application~1json/schema");
            let ty = object_type(&body, &named).or_else(|| {
                // `{ username, password }` shorthand: the names are the fields.
                let inner = body.trim().strip_prefix('{')?.strip_suffix('}')?;
                let mut ty = TsType::default();
                for name in inner.split(',') {
                    ty.fields
                        .insert(name.trim().to_string(), (false, "unknown".into()));
                }
                Some(ty)
            });
            match (ty, schema) {
                (Some(ty), Some(schema)) => {
                    let object = object_schema(&doc, schema).unwrap();
                    compare(
                        &doc,
                        &format!("{at} body"),
                        &ty,
                        object,
                        &named,
                        false,
                        &mut wrong,
                    )
                }
                (_, None) => wrong.push(format!("{at}: the route takes no JSON body")),
                (None, _) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The declared type of a call's `input` parameter.
fn call_input_type(source: &str, name: &str) -> String {
    let line = source
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}: (")))
        .unwrap();
    let after = line.split_once("input: ").unwrap().1;
    // Up to the parameter list's closing parenthesis.
    let mut depth = 0;
    let mut out = String::new();
    for c in after.chars() {
        match c {
            '{' | '(' => depth += 1,
            '}' => depth -= 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The reader above must see what it checks.
#[test]
fn the_reader_understands_the_forms_api_ts_uses() {
    let source = without_comments(
        "export interface A {\n  id: string\n  /** note */\n  n?: number\n}\n\
         export interface B extends A {\n  list: A[]\n  inner: { x: string; y?: number } | null\n}\n\
         export const api = {\n  one: (id: string) => request<B>('GET', meeting(id)),\n  \
         two: (id: string, s: string) =>\n    request<void>('DELETE', `${meeting(id)}/x/${encodeURIComponent(s)}`),\n  \
         three: (u: string, p: string) => request<A>('POST', '/api/login', { u, p }),\n}\n",
    );
    let named = interfaces(&source);
    assert_eq!(named["B"].fields.len(), 4);
    assert!(named["B"].fields["n"].0);
    let inner = object_type(&named["B"].fields["inner"].1, &named).unwrap();
    assert_eq!(inner.fields.keys().collect::<Vec<_>>(), ["x", "y"]);
    let calls = calls(&source);
    let seen: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.method.as_str(),
                c.path.as_str(),
                c.response.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("one", "GET", "/api/meetings/{}", "B"),
            ("two", "DELETE", "/api/meetings/{}/x/{}", "void"),
            ("three", "POST", "/api/login", "A"),
        ]
    );
    assert_eq!(calls[2].body.as_deref(), Some("{ u, p }"));
}
