# A shared policy: rotate 45 days before expiry, new secrets live 180 days, never touch legacy
# applications or anything named *-break-glass. Links take the whole policy object.

terraform {
  required_providers {
    rotor = {
      source = "certifyclouds/rotor"
    }
  }
}

provider "rotor" {}

variable "vault_url" {
  description = "The Key Vault holding the application secrets."
  type        = string
}

variable "apps" {
  description = "Links to manage: key = Key Vault secret name, value = application (client) id and credential display name."
  type = map(object({
    application_id          = string
    credential_display_name = string
  }))
}

resource "rotor_policy" "standard" {
  name                      = "standard"
  rotate_before_expiry_days = 45
  new_secret_validity_days  = 180
  grace_period_days         = 7
  min_confidence            = "HIGH"
  exclusions = [
    "name:legacy-*",
    "secret:*-break-glass",
  ]
}

resource "rotor_secret_link" "app" {
  for_each = var.apps

  application_id          = each.value.application_id
  credential_display_name = each.value.credential_display_name
  policy                  = rotor_policy.standard
  targets                 = [{ vault_url = var.vault_url, secret_name = each.key }]
}

output "excluded" {
  value = { for k, l in rotor_secret_link.app : k => l.excluded if l.excluded != null }
}
