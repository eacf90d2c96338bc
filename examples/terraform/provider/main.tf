terraform {
  required_providers {
    rotor = {
      source = "certifyclouds/rotor"
    }
  }
}

# Every setting is optional: each defaults from the variable azurerm uses (ARM_*), then AZURE_*.
# Authentication is lazy: a configuration that only declares rotor_policy never calls Azure.
provider "rotor" {
  # tenant_id     = "00000000-0000-0000-0000-000000000000" # ARM_TENANT_ID
  # client_id     = "00000000-0000-0000-0000-000000000000" # ARM_CLIENT_ID
  # client_secret = ...                                     # ARM_CLIENT_SECRET (prefer the variable)
  # use_oidc      = true                                    # ARM_USE_OIDC, for GitHub Actions
}

resource "rotor_policy" "standard" {
  name                      = "standard"
  rotate_before_expiry_days = 30
  new_secret_validity_days  = 180
}
