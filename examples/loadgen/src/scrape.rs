//! Gauges from the im server's Prometheus endpoint (`GET /metrics`), read over a plain
//! TCP connection (HTTP/1.0 by hand: one request, the body up to the close), so the soak
//! can watch the server's sessions and runtime tasks without an HTTP client crate.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the metrics are: `http://HOST:PORT/PATH`, HOST an IP address.
#[derive(Debug, Clone)]
pub(crate) struct MetricsUrl {
    addr: SocketAddr,
    path: String,
}

impl std::fmt::Display for MetricsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.addr, self.path)
    }
}

impl MetricsUrl {
    /// Parses `http://127.0.0.1:8080/metrics` (no TLS, no host names).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("the metrics URL must start with http://: {url}"))?;
        let (host, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/metrics"),
        };
        let addr = host
            .parse()
            .with_context(|| format!("the metrics URL needs an IP address and port: {url}"))?;
        Ok(MetricsUrl {
            addr,
            path: path.to_owned(),
        })
    }

    /// `/metrics` on the server's HTTP address (where chat-server serves it without
    /// `--admin`).
    pub(crate) fn on(addr: SocketAddr) -> Self {
        MetricsUrl {
            addr,
            path: "/metrics".into(),
        }
    }

    /// The values of the unlabelled metrics `names`, in their order (`None` for one the
    /// page does not have).
    pub(crate) async fn gauges(&self, names: &[&str]) -> anyhow::Result<Vec<Option<f64>>> {
        let page = tokio::time::timeout(SCRAPE_TIMEOUT, self.fetch())
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {self} within {SCRAPE_TIMEOUT:?}"))??;
        Ok(names.iter().map(|name| value_of(&page, name)).collect())
    }

    async fn fetch(&self) -> anyhow::Result<String> {
        let mut stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: text/plain\r\n\r\n",
            self.path, self.addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let response = String::from_utf8_lossy(&response);
        let Some((head, body)) = response.split_once("\r\n\r\n") else {
            bail!("{self}: not an HTTP response");
        };
        let status = head.lines().next().unwrap_or("");
        if status.split_whitespace().nth(1) != Some("200") {
            bail!("{self}: {status}");
        }
        Ok(body.to_owned())
    }
}

/// The value of the sample line `name VALUE` (no labels) in a Prometheus text page.
fn value_of(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_samples() {
        let page = "# TYPE im_sessions gauge\nim_sessions 12\nim_sessions_lagged_total 3\n\
                    im_frames_dropped_total{reason=\"lagging\"} 4\nim_runtime_alive_tasks 57\n";
        assert_eq!(value_of(page, "im_sessions"), Some(12.0));
        assert_eq!(value_of(page, "im_runtime_alive_tasks"), Some(57.0));
        assert_eq!(value_of(page, "im_frames_dropped_total"), None);
        assert_eq!(value_of(page, "im_nothing"), None);
        let url = MetricsUrl::parse("http://127.0.0.1:9000/metrics").unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:9000/metrics");
        assert_eq!(
            MetricsUrl::parse("http://127.0.0.1:9000").unwrap().path,
            "/metrics"
        );
        assert!(MetricsUrl::parse("https://127.0.0.1:9000/metrics").is_err());
        assert!(MetricsUrl::parse("http://localhost:9000/metrics").is_err());
    }
}
