"""Manifests the end-to-end tests apply: a namespace, configuration, a secret
and a pod using much of the PodSpec, as a user would write them."""

APP = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    team: web
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: production
  app.properties: |
    color=blue
    size=large
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
type: Opaque
data:
  password: c2VjcmV0
stringData:
  user: admin
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels:
    app: web
    tier: front
  annotations:
    example.com/owner: alice
spec:
  initContainers:
  - name: setup
    image: busybox:1.36
    command: ["sh", "-c", "echo ready > /work/ready"]
    volumeMounts:
    - name: work
      mountPath: /work
  containers:
  - name: app
    image: registry.local/shop/web:2.1
    args: ["--port", "8080"]
    workingDir: /srv
    ports:
    - name: http
      containerPort: 8080
      protocol: TCP
    env:
    - name: MODE
      valueFrom:
        configMapKeyRef:
          name: settings
          key: mode
    - name: DB_PASSWORD
      valueFrom:
        secretKeyRef:
          name: db
          key: password
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    envFrom:
    - configMapRef:
        name: settings
      prefix: CFG_
    resources:
      requests:
        cpu: 250m
        memory: 64Mi
      limits:
        cpu: "1"
        memory: 128Mi
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      initialDelaySeconds: 3
      periodSeconds: 5
    readinessProbe:
      tcpSocket:
        port: 8080
    startupProbe:
      exec:
        command: ["cat", "/work/ready"]
      failureThreshold: 30
    lifecycle:
      preStop:
        exec:
          command: ["sleep", "2"]
    volumeMounts:
    - name: work
      mountPath: /work
    - name: config
      mountPath: /etc/app
      readOnly: true
  volumes:
  - name: work
    emptyDir:
      medium: Memory
  - name: config
    configMap:
      name: settings
      items:
      - key: app.properties
        path: app.properties
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  nodeSelector:
    disk: ssd
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - key: zone
            operator: In
            values: ["a", "b"]
  tolerations:
  - key: dedicated
    operator: Equal
    value: web
    effect: NoSchedule
  hostNetwork: false
  serviceAccountName: web
"""


def spread_web(*, replicas: int = 4, grace_seconds: int = 5) -> str:
    """A Deployment "web" of sleeping busybox pods that prefers one pod per node
    (anti-affinity on the hostname), for tests that watch pods move between nodes."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: {grace_seconds}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {{matchLabels: {{app: web}}}}
      containers:
      - {{name: web, image: "busybox:1.36", command: [sleep, "3600"]}}
"""
