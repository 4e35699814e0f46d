# A complete deployment on an existing EKS cluster, applied end to end by one `terraform apply`:
# the namespace (with the AWS Load Balancer Controller's pod readiness gate turned on), the users
# Secret (from a variable or from Secrets Manager), the bucket and the IRSA role (module), an S3
# gateway endpoint (S3 traffic stays off the NAT gateway), one Elastic IP per public subnet, and
# the chart behind an internet-facing NLB (IP targets, client addresses preserved, cross-zone load
# balancing, health checks on /readyz, the EIP announced in PASV replies) with a cert-manager
# certificate.
#
#   terraform init && terraform apply -var cluster_name=prod -var bucket_name=acme-ftp \
#     -var ftp_host_name=ftp.example.com -var 'public_subnet_ids=["subnet-a","subnet-b","subnet-c"]' \
#     -var users_secret_arn=arn:aws:secretsmanager:...   (or -var users_toml="$(cat users.toml)")

provider "aws" {
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

data "aws_eks_cluster_auth" "this" {
  name = var.cluster_name
}

data "aws_vpc" "cluster" {
  id = data.aws_eks_cluster.this.vpc_config[0].vpc_id
}

data "aws_iam_openid_connect_provider" "this" {
  url = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

provider "kubernetes" {
  host                   = data.aws_eks_cluster.this.endpoint
  cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
  token                  = data.aws_eks_cluster_auth.this.token
}

provider "helm" {
  kubernetes {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}

locals {
  namespace = "ftps-s3"
  # users.toml from Secrets Manager when an ARN is given, else from the variable.
  users_toml = var.users_secret_arn != null ? data.aws_secretsmanager_secret_version.users[0].secret_string : var.users_toml
}

# --- Kubernetes objects the release needs before it starts ------------------------------------------

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name = local.namespace
    labels = {
      # The AWS Load Balancer Controller adds a readiness gate to pods in this namespace: a new
      # pod counts as ready only once the NLB's target groups report it healthy, so a rollout
      # never stops the old pod before the new one receives traffic.
      "elbv2.k8s.aws/pod-readiness-gate-inject" = "enabled"
    }
  }
}

data "aws_secretsmanager_secret_version" "users" {
  count     = var.users_secret_arn != null ? 1 : 0
  secret_id = var.users_secret_arn
}

resource "kubernetes_secret_v1" "users" {
  metadata {
    name      = "ftps-s3-users"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  data = {
    "users.toml" = local.users_toml
  }

  lifecycle {
    precondition {
      condition     = local.users_toml != null && local.users_toml != ""
      error_message = "Set users_secret_arn (a Secrets Manager secret holding users.toml) or users_toml."
    }
  }
}

# --- Network: S3 without the NAT gateway, fixed public addresses ---------------------------------------

data "aws_route_tables" "cluster" {
  vpc_id = data.aws_vpc.cluster.id
}

# Gateway endpoint: S3 requests from the pods go straight to S3 instead of through the NAT
# gateway (no NAT data processing charge on every byte uploaded or downloaded).
resource "aws_vpc_endpoint" "s3" {
  count = var.create_s3_gateway_endpoint ? 1 : 0

  vpc_id            = data.aws_vpc.cluster.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = data.aws_route_tables.cluster.ids
  tags              = { Name = "${var.bucket_name}-s3" }
}

# One Elastic IP per public subnet (the NLB needs one per subnet it spans); PASV replies announce
# the first. Cross-zone load balancing lets that address reach the pod in whatever zone it runs.
resource "aws_eip" "nlb" {
  # checkov:skip=CKV2_AWS_19: the EIPs are attached to the NLB (eip-allocations annotation), not to instances
  count  = length(var.public_subnet_ids)
  domain = "vpc"
  tags   = { Name = "${var.bucket_name}-ftps-${count.index}" }
}

module "ftps_s3" {
  source = "../../modules/ftps-s3"

  bucket_name       = var.bucket_name
  oidc_provider_arn = data.aws_iam_openid_connect_provider.this.arn
  namespace         = kubernetes_namespace_v1.this.metadata[0].name

  # Interrupted uploads may be kept up to 24 h for resuming: 2 days leaves room (see the module).
  abort_incomplete_multipart_upload_days = 2
  versioning_enabled                     = true
  noncurrent_version_expiration_days     = 30

  helm_release = {
    enabled = true
    # The namespace is created above (with its readiness-gate label).
    create_namespace = false
    # atomic and cleanup_on_fail are on by default in the module.
    values = [yamlencode({
      # One replica: several behind one load balancer need a front end that pins clients by
      # address for every port (see helm/ftps-s3/README.md, "Several replicas").
      replicaCount = 1
      tls = {
        certManager = {
          enabled   = true
          issuerRef = { name = var.cluster_issuer, kind = "ClusterIssuer", group = "cert-manager.io" }
          dnsNames  = [var.ftp_host_name]
        }
      }
      users = { existingSecret = kubernetes_secret_v1.users.metadata[0].name }
      config = {
        passive = { advertise_address = aws_eip.nlb[0].public_ip }
      }
      service = {
        annotations = {
          "service.beta.kubernetes.io/aws-load-balancer-type"            = "external"
          "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type" = "ip"
          "service.beta.kubernetes.io/aws-load-balancer-scheme"          = "internet-facing"
          # The server checks that data connections come from the control connection's address.
          # Deregistration waits for the drain (preStopSleepSeconds + shutdown grace).
          "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes" = "preserve_client_ip.enabled=true,deregistration_delay.timeout_seconds=120"
          # Every zone's NLB node reaches the pod, wherever it is scheduled.
          "service.beta.kubernetes.io/aws-load-balancer-attributes"      = "load_balancing.cross_zone.enabled=true"
          "service.beta.kubernetes.io/aws-load-balancer-subnets"         = join(",", var.public_subnet_ids)
          "service.beta.kubernetes.io/aws-load-balancer-eip-allocations" = join(",", aws_eip.nlb[*].id)
          # Every listener's target group checks /readyz: passive ports have no listener between
          # transfers, and /readyz turns false as soon as a pod starts draining.
          "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port"     = "9090"
          "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol" = "HTTP"
          "service.beta.kubernetes.io/aws-load-balancer-healthcheck-path"     = "/readyz"
        }
        allocateLoadBalancerNodePorts = false
        loadBalancerSourceRanges      = var.client_cidrs
      }
      networkPolicy = {
        ftpFrom = var.client_cidrs
        # Prometheus in the cluster, and the NLB's health checks from the VPC.
        adminFrom = [
          { namespaceSelector = {} },
          { ipBlock = { cidr = data.aws_vpc.cluster.cidr_block } },
        ]
      }
    })]
  }

  tags = {
    Application = "ftps-s3"
  }
}
