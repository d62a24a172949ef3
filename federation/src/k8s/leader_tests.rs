//! Request-level tests of the election against a `tower-test` mock API server:
//! the exact requests `try_lead` sends, and how it reads the answers.

use super::*;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, pair};

type Server = Handle<Request<Body>, Response<Body>>;

fn lease_api() -> (LeaderLease, Server) {
    let (svc, handle) = pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "causeway");
    let lease = LeaderLease {
        api: Api::namespaced(client, "causeway"),
        name: "causeway-federation".into(),
        me: "east-1".into(),
        duration: Duration::from_secs(15),
    };
    (lease, handle)
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn next(
    server: &mut Server,
) -> (
    Request<Body>,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    tokio::time::timeout(Duration::from_secs(5), server.next_request())
        .await
        .unwrap()
        .expect("a request")
}

async fn body_json(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn held_by(who: &str, renewed: &str, rv: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "causeway-federation", "namespace": "causeway", "resourceVersion": rv},
        "spec": {"holderIdentity": who, "renewTime": renewed, "leaseDurationSeconds": 15, "leaseTransitions": 2}})
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/causeway/leases/causeway-federation";

#[tokio::test]
async fn an_expired_lease_is_taken_with_its_resource_version_and_a_conflict_means_follow() {
    let (lease, mut server) = lease_api();
    let task = tokio::spawn(async move { lease.try_lead().await });
    let (req, send) = next(&mut server).await;
    assert_eq!((req.method().as_str(), req.uri().path()), ("GET", LEASE));
    send.send_response(respond(
        200,
        &held_by("east-0", "2020-01-01T00:00:00.000000Z", "7"),
    ));
    let (req, send) = next(&mut server).await;
    assert_eq!((req.method().as_str(), req.uri().path()), ("PUT", LEASE));
    let sent = body_json(req).await;
    assert_eq!(
        sent["metadata"]["resourceVersion"], "7",
        "the update is conditional"
    );
    assert_eq!(sent["spec"]["holderIdentity"], "east-1");
    assert_eq!(sent["spec"]["leaseTransitions"], 3);
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "modified"});
    send.send_response(respond(409, &conflict));
    assert!(
        !task.await.unwrap().unwrap(),
        "losing the race means following"
    );
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_only_read() {
    let (lease, mut server) = lease_api();
    let task = tokio::spawn(async move { lease.try_lead().await });
    let (req, send) = next(&mut server).await;
    assert_eq!(req.method().as_str(), "GET");
    let now = Timestamp::now().to_string();
    send.send_response(respond(200, &held_by("east-0", &now, "9")));
    assert!(!task.await.unwrap().unwrap());
}

#[tokio::test]
async fn a_missing_lease_is_created_and_server_errors_are_reported() {
    let (lease, mut server) = lease_api();
    let task = tokio::spawn(async move { lease.try_lead().await });
    let (_, send) = next(&mut server).await;
    let missing = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
    send.send_response(respond(404, &missing));
    let (req, send) = next(&mut server).await;
    assert_eq!(req.method().as_str(), "POST");
    assert_eq!(
        req.uri().path(),
        "/apis/coordination.k8s.io/v1/namespaces/causeway/leases"
    );
    let sent = body_json(req).await;
    assert_eq!(
        sent["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "causeway"
    );
    let denied = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "leases is forbidden"});
    send.send_response(respond(403, &denied));
    let err = task.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("Lease causeway-federation") && err.contains("forbidden"),
        "{err}"
    );
}
