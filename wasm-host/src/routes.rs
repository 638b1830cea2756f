//! HTTP routing: which component serves a request path.
//!
//! Pure logic, no I/O. Spin's route syntax is supported in the form Crowdgate
//! uses: exact routes (`/hello`) and trailing wildcards (`/api/...` matches
//! `/api` and everything below it; `/...` matches every path). An exact route
//! beats any wildcard; among wildcards the longest prefix wins, so a
//! catch-all can sit next to more specific routes in any order.

/// A parsed route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Matches one path exactly (a trailing `/` is ignored).
    Exact(String),
    /// Matches the prefix itself and every path below it. The prefix has no
    /// trailing `/`; the catch-all `/...` has the empty prefix.
    Wildcard(String),
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
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let path = trim_trailing_slash(path);
        let mut best: Option<(&Route, usize)> = None;
        for route in &self.routes {
            // Rank: exact matches beat every wildcard; longer wildcards beat shorter.
            let rank = match &route.pattern {
                Pattern::Exact(p) if p == path => usize::MAX,
                Pattern::Exact(_) => continue,
                Pattern::Wildcard(prefix) if is_under(path, prefix) => prefix.len(),
                Pattern::Wildcard(_) => continue,
            };
            if best.is_none_or(|(_, r)| rank > r) {
                best = Some((route, rank));
            }
        }
        let (route, _) = best?;
        let (component_route, path_info) = match &route.pattern {
            Pattern::Exact(p) => (p.as_str(), String::new()),
            Pattern::Wildcard(prefix) => (prefix.as_str(), path[prefix.len()..].to_string()),
        };
        Some(RouteMatch {
            component: route.component,
            matched_route: &route.raw,
            component_route,
            path_info,
        })
    }
}

fn parse(raw: &str) -> Result<Pattern, String> {
    if !raw.starts_with('/') {
        return Err(format!("route `{raw}` must start with `/`"));
    }
    if let Some(prefix) = raw.strip_suffix("/...") {
        return Ok(Pattern::Wildcard(trim_trailing_slash(prefix).to_string()));
    }
    if raw.contains("...") {
        return Err(format!(
            "route `{raw}`: a wildcard `...` is only allowed as the last segment"
        ));
    }
    Ok(Pattern::Exact(trim_trailing_slash(raw).to_string()))
}

/// `/a/b/` → `/a/b`, but `/` stays `/`.
fn trim_trailing_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(rest) if !rest.is_empty() => rest,
        _ => path,
    }
}

/// Whether `path` is `prefix` itself or below it (segment-wise: `/api`
/// covers `/api/x` but not `/apix`).
fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes()[prefix.len()] == b'/')
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
    fn invalid_and_duplicate_routes_are_rejected() {
        assert!(Router::new([("hello", 0)]).is_err());
        assert!(Router::new([("/a/.../b", 0)]).is_err());
        assert!(Router::new([("/a", 0), ("/a/", 1)]).is_err());
        assert!(Router::new([("/a/...", 0), ("/a/...", 1)]).is_err());
    }
}
