# Adopt a secret rotor did not create. Write the link, then import it by its own id
# <application_id>/<credential_display_name> (or <application_id>/<key_id of the client secret>);
# rotor finds the Key Vault secrets that hold it through tags and matching:
#
#   terraform import rotor_secret_link.billing "00000000-0000-0000-0000-000000000000/prod"
#
# The provider searches the vaults in its `vault_urls` (or ROTOR_VAULTS) and the vaults of its
# `subscription_id` (or ARM_SUBSCRIPTION_ID). After the import, `terraform plan` is empty unless
# the secret is due.

terraform {
  required_providers {
    rotor = {
      source = "certifyclouds/rotor"
    }
  }
}

variable "vault_url" {
  description = "The Key Vault holding the secret."
  type        = string
}

variable "application_id" {
  description = "Application (client) id."
  type        = string
}

provider "rotor" {
  vault_urls = [var.vault_url]
}

resource "rotor_secret_link" "billing" {
  application_id          = var.application_id
  credential_display_name = "prod"
  targets = [{
    vault_url   = var.vault_url
    secret_name = "billing-api-client-secret"
  }]
}
