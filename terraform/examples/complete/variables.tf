variable "region" {
  description = "AWS region of the EKS cluster and the bucket."
  type        = string
  default     = "eu-west-1"
}

variable "cluster_name" {
  description = "Name of an existing EKS cluster with an IAM OIDC provider, the AWS Load Balancer Controller and cert-manager."
  type        = string
}

variable "bucket_name" {
  description = "Name of the bucket to create."
  type        = string
}

variable "ftp_host_name" {
  description = "DNS name partners connect to (certificate subject)."
  type        = string
}

variable "cluster_issuer" {
  description = "cert-manager ClusterIssuer that signs the certificate."
  type        = string
  default     = "letsencrypt"
}

variable "users_secret_name" {
  description = "Existing Secret in the namespace with users.toml (kubectl create secret generic NAME --from-file=users.toml)."
  type        = string
  default     = "ftps-s3-users"
}

variable "client_cidrs" {
  description = "Partner networks allowed to connect (load balancer and NetworkPolicy)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}
