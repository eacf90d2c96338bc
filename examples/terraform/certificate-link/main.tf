# One application certificate (key credential lineage `tls`) held by a Key Vault certificate.
# When the certificate is within 30 days of expiry — or Key Vault AutoRenew made a version the
# application does not have yet — `terraform plan` warns and shows an in-place update;
# `terraform apply` has Key Vault make (or adopts) the new version, adds its public key to the
# application, proves it signs in, and keeps the old key credential for the grace period.
# The private key never leaves Key Vault; state holds ids, thumbprints, dates and versions only.

terraform {
  required_providers {
    rotor = {
      source = "certifyclouds/rotor"
    }
  }
}

variable "application_id" {
  description = "Application (client) id of the App Registration whose certificate is rotated."
  type        = string
}

variable "vault_url" {
  description = "URL of the Key Vault holding the certificate (https://<vault>.vault.azure.net/)."
  type        = string
}

variable "certificate_name" {
  description = "Name of the Key Vault certificate."
  type        = string
  default     = "myapp-tls"
}

provider "rotor" {
  vault_urls = [var.vault_url]
}

resource "rotor_policy" "certificates" {
  name                      = "certificates"
  rotate_before_expiry_days = 30
  grace_period_days         = 7
}

resource "rotor_certificate_link" "myapp" {
  application_id          = var.application_id
  credential_display_name = "tls"
  certificates = [{
    vault_url        = var.vault_url
    certificate_name = var.certificate_name
  }]
  policy = rotor_policy.certificates
}

output "thumbprint" {
  value = rotor_certificate_link.myapp.thumbprint
}
