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

variable "users_secret_arn" {
  description = "Secrets Manager secret whose value is users.toml (names, argon2 hashes, homes). Either this or users_toml."
  type        = string
  default     = null
}

variable "users_toml" {
  description = "users.toml itself (hashes only, never passwords), when not from Secrets Manager."
  type        = string
  default     = null
  sensitive   = true
}

variable "public_subnet_ids" {
  description = "Public subnets for the NLB, one per zone the pods run in (one Elastic IP each)."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "Give a public subnet in every zone the pods may run in (at least two)."
  }
}

variable "create_s3_gateway_endpoint" {
  description = "Create an S3 gateway VPC endpoint on the VPC's route tables (false if the VPC has one)."
  type        = bool
  default     = true
}

variable "client_cidrs" {
  description = "Partner networks allowed to connect (load balancer and NetworkPolicy)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}
