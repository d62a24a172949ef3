//! A raw request to the fake API server, for what a typed client would refuse to send
//! (kept apart from `fake_kube`, which the root tests include without `kube`).

use serde_json::Value;

use super::fake_kube::FakeKube;

/// What the API server says to `method path` with `body`.
pub async fn call(kube: &FakeKube, method: &str, path: &str, body: Value) -> u16 {
    let client = causeway_federation::kube_client(Some(&kube.url("probe")))
        .await
        .unwrap();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    match client.request::<Value>(req).await {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("{e}"),
    }
}
