//! A headless Chromium driven over the W3C WebDriver HTTP protocol (a few
//! JSON requests to chromedriver), for tests of the `/ui` page.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use causeway::dev::http::request;
use serde_json::{Value, json};

use super::{Guard, free_addr, have, wait_for};

const LIMIT: Duration = Duration::from_secs(30);

pub struct Browser {
    driver: SocketAddr,
    session: String,
    _process: Guard,
}

impl Browser {
    /// Starts chromedriver and a headless session; `Err` says why it cannot (skip).
    pub async fn start() -> Result<Browser, String> {
        for (bin, pkg) in [
            ("chromium", "chromium"),
            ("chromedriver", "chromium-driver"),
        ] {
            if !have(bin) {
                return Err(format!("{bin} is not installed (apt-get install {pkg})"));
            }
        }
        let driver = free_addr();
        let child = Command::new("chromedriver")
            .arg(format!("--port={}", driver.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting chromedriver: {e}"))?;
        let process = Guard(Some(child));
        wait_for("chromedriver", LIMIT, || async {
            let (status, body) = request(driver, "GET", "/status", None, LIMIT).await.ok()?;
            (status == 200 && body.contains("\"ready\":true")).then_some(())
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,900"
        ]}}}});
        let mut b = Browser {
            driver,
            session: String::new(),
            _process: process,
        };
        let v = b.call("POST", "/session", caps).await;
        b.session = v["sessionId"]
            .as_str()
            .ok_or(format!("no session: {v}"))?
            .to_owned();
        Ok(b)
    }

    /// One WebDriver command; panics on an error answer. Returns `value`.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = (method == "POST").then(|| body.to_string());
        let (status, text) = request(self.driver, method, path, body.as_deref(), LIMIT)
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(status, 200, "webdriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn at(&self, what: &str) -> String {
        format!("/session/{}/{what}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("url"), json!({ "url": url }))
            .await;
    }

    /// Runs `body` (a function body: `return ...;`) in the page.
    pub async fn script(&self, body: &str) -> Value {
        let cmd = json!({ "script": body, "args": [] });
        self.call("POST", &self.at("execute/sync"), cmd).await
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", &self.at("screenshot"), Value::Null).await;
        let b64 = v.as_str().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap()
    }
}

impl Drop for Browser {
    /// Ends the session so Chromium exits before chromedriver is killed.
    fn drop(&mut self) {
        if self.session.is_empty() {
            return;
        }
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.driver, LIMIT) else {
            return;
        };
        let _ = s.set_read_timeout(Some(LIMIT));
        let req = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.session, self.driver
        );
        let _ = s.write_all(req.as_bytes());
        let _ = s.read_to_end(&mut Vec::new());
    }
}
