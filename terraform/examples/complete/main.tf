# A complete deployment on an existing EKS cluster: the bucket and the IRSA role (module), and the
# chart behind an internet-facing NLB (AWS Load Balancer Controller, IP targets, client addresses
# preserved, health checks on /readyz) with a cert-manager certificate.
#
#   terraform init && terraform apply -var cluster_name=prod -var bucket_name=acme-ftp \
#     -var ftp_host_name=ftp.example.com

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

provider "helm" {
  kubernetes {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}

module "ftps_s3" {
  source = "../../modules/ftps-s3"

  bucket_name       = var.bucket_name
  oidc_provider_arn = data.aws_iam_openid_connect_provider.this.arn
  namespace         = "ftps-s3"

  # Interrupted uploads may be kept up to 24 h for resuming: 2 days leaves room (see the module).
  abort_incomplete_multipart_upload_days = 2
  versioning_enabled                     = true
  noncurrent_version_expiration_days     = 30

  helm_release = {
    enabled = true
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
      users = { existingSecret = var.users_secret_name }
      service = {
        annotations = {
          "service.beta.kubernetes.io/aws-load-balancer-type"            = "external"
          "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type" = "ip"
          "service.beta.kubernetes.io/aws-load-balancer-scheme"          = "internet-facing"
          # The server checks that data connections come from the control connection's address.
          "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes" = "preserve_client_ip.enabled=true"
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
