#!/usr/bin/env bash
# Two kind clusters, east and west, linked by causeway:
#   - non-overlapping pod and service CIDRs;
#   - the causeway image built here and loaded into both;
#   - per-cluster CAs and certificates made with `causeway ca` (run from the image);
#   - the chart installed in both, each the other's peer, over NodePorts on the
#     kind nodes' addresses (the nodes share the `kind` docker network; no MetalLB);
#   - CoreDNS in each forwarding clusterset.local to causeway's DNS;
#   - a demo service exported from west and reached by name from east.
#
# Needs: docker, kind, kubectl, helm. Usage: hack/kind-pair.sh [up|down]
# Not run in CI (no container engine there); see docs/kubernetes.md.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-causeway:dev}
NS=causeway
CLUSTERSET=demo.causeway
WORK=${WORK:-$PWD/target/kind-pair}
declare -A POD_CIDR=([east]=10.110.0.0/16 [west]=10.120.0.0/16)
declare -A SVC_CIDR=([east]=10.111.0.0/16 [west]=10.121.0.0/16)
# ClusterSetIPs: the upper half of the static band (first 256 addresses) of
# each Service CIDR, clear of the API server's .1 and kube-dns's .10.
declare -A VIPS=([east]=10.111.0.128/25 [west]=10.121.0.128/25)
declare -A REGION=([east]=us-east [west]=us-west)

log() { printf '\n==> %s\n' "$*" >&2; }
ctx() { echo "kind-$1"; }
other() { if [ "$1" = east ]; then echo west; else echo east; fi; }

need() {
    for tool in docker kind kubectl helm; do
        command -v "$tool" >/dev/null || { echo "error: $tool is not on PATH" >&2; exit 1; }
    done
}

create_cluster() {
    local c=$1
    if kind get clusters 2>/dev/null | grep -qx "$c"; then
        log "kind cluster $c exists"
        return
    fi
    log "creating kind cluster $c (pods ${POD_CIDR[$c]}, services ${SVC_CIDR[$c]})"
    cat >"$WORK/kind-$c.yaml" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  podSubnet: ${POD_CIDR[$c]}
  serviceSubnet: ${SVC_CIDR[$c]}
YAML
    kind create cluster --name "$c" --wait 120s --config "$WORK/kind-$c.yaml"
}

node_ip() {
    docker inspect -f '{{ .NetworkSettings.Networks.kind.IPAddress }}' "$1-control-plane"
}

# causeway from the image, writing into $WORK as the calling user.
causeway() {
    docker run --rm --user "$(id -u):$(id -g)" -v "$WORK:$WORK" -w "$WORK" "$IMAGE" "$@"
}

make_certs() {
    local c=$1 dir="$WORK/$1"
    if [ -f "$dir/certs/dns.pem" ]; then return; fi
    log "certificates for $c (trust domain $c.$CLUSTERSET)"
    mkdir -p "$dir/ca" "$dir/certs"
    causeway ca init --cluster "$c" --trust-domain "$c.$CLUSTERSET" --out "$dir/ca"
    for w in gateway federation dns; do
        causeway ca issue --ca "$dir/ca" --workload "$w" --out "$dir/certs"
    done
}

install_chart() {
    local c=$1 peer; peer=$(other "$1")
    local me_ip peer_ip; me_ip=$(node_ip "$c"); peer_ip=$(node_ip "$peer")
    log "installing causeway in $c (gateway $me_ip:31443, peer $peer at $peer_ip:31010)"
    kubectl --context "$(ctx "$c")" create namespace "$NS" --dry-run=client -o yaml |
        kubectl --context "$(ctx "$c")" apply -f -
    kubectl --context "$(ctx "$c")" -n "$NS" create secret generic causeway-certs \
        --from-file="$WORK/$c/certs/" \
        --from-file="peer-$peer-ca.pem=$WORK/$peer/ca/ca.pem" \
        --dry-run=client -o yaml | kubectl --context "$(ctx "$c")" apply -f -
    helm upgrade --install causeway charts/causeway --kube-context "$(ctx "$c")" \
        --namespace "$NS" --wait --timeout 5m \
        --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
        --set cluster.name="$c" --set cluster.region="${REGION[$c]}" \
        --set cluster.zone="${REGION[$c]}-1a" --set cluster.clusterset="$CLUSTERSET" \
        --set "gateway.advertise[0]=$me_ip:31443" \
        --set "gateway.vipRanges[0]=${VIPS[$c]}" \
        --set "peers[0].name=$peer" --set "peers[0].federation=$peer_ip:31010" \
        --set "peers[0].caKey=peer-$peer-ca.pem"
}

# Adds a clusterset.local server block to the Corefile, forwarding to causeway's DNS.
configure_coredns() {
    local c=$1 k="kubectl --context $(ctx "$1")"
    local dns_ip corefile
    dns_ip=$($k -n "$NS" get svc causeway-dns -o jsonpath='{.spec.clusterIP}')
    corefile=$($k -n kube-system get configmap coredns -o jsonpath='{.data.Corefile}')
    if grep -q 'clusterset.local:53' <<<"$corefile"; then return; fi
    log "CoreDNS in $c: clusterset.local -> $dns_ip"
    corefile="$corefile
clusterset.local:53 {
    errors
    cache 5
    forward . $dns_ip
}"
    $k -n kube-system create configmap coredns --from-literal=Corefile="$corefile" \
        --dry-run=client -o yaml | $k apply -f -
    $k -n kube-system rollout restart deployment coredns
    $k -n kube-system rollout status deployment coredns --timeout 2m
}

deploy_demo() {
    log "demo: web in west, exported; namespace demo in east (MCS namespace sameness)"
    kubectl --context "$(ctx east)" create namespace demo --dry-run=client -o yaml |
        kubectl --context "$(ctx east)" apply -f -
    kubectl --context "$(ctx west)" apply -f - <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.k8s.io/e2e-test-images/agnhost:2.53
          args: [netexec, --http-port=8080]
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /hostname, port: http}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceExport
metadata: {name: web, namespace: demo}
YAML
    kubectl --context "$(ctx west)" -n demo rollout status deployment web --timeout 3m
}

check_demo() {
    log "waiting for the ServiceImport demo/web in east"
    for _ in $(seq 60); do
        kubectl --context "$(ctx east)" -n demo get serviceimport web >/dev/null 2>&1 && break
        sleep 2
    done
    kubectl --context "$(ctx east)" -n demo get serviceimport web -o wide
    kubectl --context "$(ctx west)" -n demo get serviceexport web \
        -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'
    log "from east: curl http://web.demo.svc.clusterset.local/hostname"
    kubectl --context "$(ctx east)" -n demo run curl --rm -i --restart=Never \
        --image=curlimages/curl:8.11.1 --command -- \
        curl -sS --retry 10 --retry-all-errors --retry-delay 2 \
        http://web.demo.svc.clusterset.local/hostname
    echo
    log "done: a pod in west answered a request made by name from east"
}

up() {
    need
    mkdir -p "$WORK"
    log "building $IMAGE"
    docker build -t "$IMAGE" .
    for c in east west; do create_cluster "$c"; done
    for c in east west; do
        kind load docker-image "$IMAGE" --name "$c"
        make_certs "$c"
    done
    for c in east west; do install_chart "$c"; done
    for c in east west; do configure_coredns "$c"; done
    deploy_demo
    check_demo
}

down() {
    for c in east west; do kind delete cluster --name "$c" || true; done
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
