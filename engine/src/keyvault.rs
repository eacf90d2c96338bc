//! keyvault (in progress)
