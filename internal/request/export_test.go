package request

// AD is ad, for tests that open what the service sealed.
var AD = ad
