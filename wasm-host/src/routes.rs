//! HTTP routing: which component serves a request path.
//!
//! Pure logic, no I/O. Spin's route syntax is supported in the form Crowdgate
//! uses: exact routes (`/hello`), trailing wildcards (`/api/...` matches
//! `/api` and everything below it; `/...` matches every path) and
//! single-segment wildcards (`/r/:round/api/investments/...`, the value
//! passed as `spin-path-match-round`). An exact route beats any wildcard;
//! among wildcards the one with more segments wins, and a literal segment
//! beats a `:name`, so a catch-all can sit next to more specific routes in
//! any order.

/// A parsed route pattern: its segments, and whether it is a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The route without its wildcard and trailing `/` (`/api`, or the
    /// empty string for the catch-all): `spin-component-route`.
    prefix: String,
    segments: Vec<Segment>,
    /// `.../...`: matches the segments and everything below them.
    wildcard: bool,
}

/// One `/`-separated segment of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches itself only.
    Literal(String),
    /// `:name`: matches any one non-empty segment, passed to the component
    /// as `spin-path-match-<name>`.
    Param(String),
}

/// One route of the routing table.
#[derive(Debug, Clone)]
struct Route {
    /// The route as written in the manifest, e.g. `/api/...`.
    raw: String,
    pattern: Pattern,
    /// Index of the component serving it (in the host's component list).
    component: usize,
}

/// The result of routing a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// Index of the component that serves the request.
    pub component: usize,
    /// The route as written in the manifest (`spin-matched-route`).
    pub matched_route: &'a str,
    /// The route without its wildcard (`spin-component-route`), e.g. `/api`.
    pub component_route: &'a str,
    /// The part of the path below the component route (`spin-path-info`).
    pub path_info: String,
    /// Each `:name` segment's value (`spin-path-match-<name>`).
    pub params: Vec<(&'a str, String)>,
}

/// All routes of an application, ready to answer lookups.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds a router from `(route, component index)` pairs. Fails on a route
    /// that does not start with `/` or on two routes with the same pattern.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, usize)>) -> Result<Router, String> {
        let mut out: Vec<Route> = Vec::new();
        for (raw, component) in routes {
            let pattern = parse(raw)?;
            if let Some(dup) = out.iter().find(|r| r.pattern == pattern) {
                return Err(format!(
                    "routes `{}` and `{raw}` overlap exactly; each route must be unique",
                    dup.raw
                ));
            }
            out.push(Route {
                raw: raw.to_string(),
                pattern,
                component,
            });
        }
        Ok(Router { routes: out })
    }

    /// Finds the most specific route for `path` (the URI path, no query).
    /// An exact route beats every wildcard; among wildcards the one with
    /// more segments wins, and a literal segment beats a `:name` one.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let path = trim_trailing_slash(path);
        let mut best: Option<(&Route, (bool, usize, usize), Matched<'_>)> = None;
        for route in &self.routes {
            let Some(matched) = matches(&route.pattern, path) else {
                continue;
            };
            let literals = route
                .pattern
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            let rank = (
                !route.pattern.wildcard,
                route.pattern.segments.len(),
                literals,
            );
            if best.as_ref().is_none_or(|(_, r, _)| rank > *r) {
                best = Some((route, rank, matched));
            }
        }
        let (route, _, matched) = best?;
        Some(RouteMatch {
            component: route.component,
            matched_route: &route.raw,
            component_route: &route.pattern.prefix,
            path_info: path[matched.consumed..].to_string(),
            params: matched.params,
        })
    }
}

/// How a path matched a pattern: how many of its bytes the segments took,
/// and the `:name` values.
struct Matched<'a> {
    consumed: usize,
    params: Vec<(&'a str, String)>,
}

/// Whether `path` matches `pattern` (segment by segment: `/api` covers
/// `/api/x` but not `/apix`).
fn matches<'a>(pattern: &'a Pattern, path: &str) -> Option<Matched<'a>> {
    let mut consumed = 0;
    let mut params = Vec::new();
    let mut rest = path;
    for segment in &pattern.segments {
        let after_slash = rest.strip_prefix('/')?;
        let end = after_slash.find('/').unwrap_or(after_slash.len());
        let value = &after_slash[..end];
        match segment {
            Segment::Literal(literal) if literal == value => {}
            Segment::Param(name) if !value.is_empty() => {
                params.push((name.as_str(), value.to_string()));
            }
            _ => return None,
        }
        consumed += 1 + end;
        rest = &after_slash[end..];
    }
    let whole = rest.is_empty() || rest == "/";
    (pattern.wildcard || whole).then_some(Matched { consumed, params })
}

fn parse(raw: &str) -> Result<Pattern, String> {
    if !raw.starts_with('/') {
        return Err(format!("route `{raw}` must start with `/`"));
    }
    let (prefix, wildcard) = match raw.strip_suffix("/...") {
        Some(prefix) => (prefix, true),
        None => (raw, false),
    };
    if prefix.contains("...") {
        return Err(format!(
            "route `{raw}`: a wildcard `...` is only allowed as the last segment"
        ));
    }
    let prefix = match trim_trailing_slash(prefix) {
        "/" if wildcard => "",
        p => p,
    };
    let segments = prefix
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix(':') {
            Some("") => Err(format!("route `{raw}`: a `:` segment needs a name")),
            Some(name) => Ok(Segment::Param(name.to_string())),
            None => Ok(Segment::Literal(s.to_string())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Pattern {
        prefix: prefix.to_string(),
        segments,
        wildcard,
    })
}

/// `/a/b/` → `/a/b`, but `/` stays `/`.
fn trim_trailing_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        Router::new(routes.iter().enumerate().map(|(i, r)| (*r, i))).unwrap()
    }

    fn component(r: &Router, path: &str) -> Option<usize> {
        r.route(path).map(|m| m.component)
    }

    #[test]
    fn exact_routes_match_only_themselves() {
        let r = router(&["/hello"]);
        assert_eq!(component(&r, "/hello"), Some(0));
        assert_eq!(component(&r, "/hello/"), Some(0));
        assert_eq!(component(&r, "/hello/x"), None);
        assert_eq!(component(&r, "/hell"), None);
        assert_eq!(r.route("/hello").unwrap().path_info, "");
    }

    #[test]
    fn wildcard_matches_prefix_and_below_by_segment() {
        let r = router(&["/api/..."]);
        assert_eq!(component(&r, "/api"), Some(0));
        assert_eq!(component(&r, "/api/x/y"), Some(0));
        assert_eq!(component(&r, "/apix"), None);
        assert_eq!(component(&r, "/"), None);
        let m = r.route("/api/x/y").unwrap();
        assert_eq!(m.path_info, "/x/y");
        assert_eq!(m.component_route, "/api");
        assert_eq!(m.matched_route, "/api/...");
    }

    #[test]
    fn catch_all_matches_everything() {
        let r = router(&["/..."]);
        assert_eq!(component(&r, "/"), Some(0));
        let m = r.route("/a/b").unwrap();
        assert_eq!(m.path_info, "/a/b");
        assert_eq!(m.component_route, "");
    }

    #[test]
    fn most_specific_route_wins_regardless_of_order() {
        let r = router(&["/...", "/api/...", "/api/v1/...", "/api/v1/join"]);
        assert_eq!(component(&r, "/page"), Some(0));
        assert_eq!(component(&r, "/api/status"), Some(1));
        assert_eq!(component(&r, "/api/v1/status"), Some(2));
        assert_eq!(component(&r, "/api/v1/join"), Some(3));
        assert_eq!(component(&r, "/api/v1/join/x"), Some(2));

        let reversed = router(&["/api/v1/join", "/api/v1/...", "/api/...", "/..."]);
        assert_eq!(component(&reversed, "/api/v1/join"), Some(0));
        assert_eq!(component(&reversed, "/api/v1/x"), Some(1));
        assert_eq!(component(&reversed, "/api/x"), Some(2));
        assert_eq!(component(&reversed, "/x"), Some(3));
    }

    #[test]
    fn exact_beats_wildcard_with_same_prefix() {
        let r = router(&["/api/...", "/api"]);
        assert_eq!(component(&r, "/api"), Some(1));
        assert_eq!(component(&r, "/api/x"), Some(0));
    }

    #[test]
    fn a_name_segment_matches_any_one_segment_and_literals_beat_it() {
        let r = router(&[
            "/...",
            "/api/investments/...",
            "/r/:round/api/investments/...",
        ]);
        assert_eq!(component(&r, "/r/spring/api/investments"), Some(2));
        let m = r.route("/r/spring/api/investments/inv_1").unwrap();
        assert_eq!(m.path_info, "/inv_1");
        assert_eq!(m.params, vec![("round", "spring".to_string())]);
        assert_eq!(m.component_route, "/r/:round/api/investments");
        assert_eq!(component(&r, "/r/spring/"), Some(0));
        assert_eq!(component(&r, "/r/spring/api/status"), Some(0));
        assert_eq!(
            component(&r, "/r//api/investments"),
            Some(0),
            "an empty segment is no name"
        );
        assert_eq!(component(&r, "/api/investments"), Some(1));

        let r = router(&["/r/:round/...", "/r/bonds/..."]);
        assert_eq!(component(&r, "/r/bonds/x"), Some(1));
        assert_eq!(component(&r, "/r/shares/x"), Some(0));
        assert!(Router::new([("/r/:/x", 0)]).is_err());
    }

    #[test]
    fn invalid_and_duplicate_routes_are_rejected() {
        assert!(Router::new([("hello", 0)]).is_err());
        assert!(Router::new([("/a/.../b", 0)]).is_err());
        assert!(Router::new([("/a", 0), ("/a/", 1)]).is_err());
        assert!(Router::new([("/a/...", 0), ("/a/...", 1)]).is_err());
    }
}
