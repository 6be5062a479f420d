"""Every ``nginx.ingress.kubernetes.io/*`` annotation, classified for Traefik's NGINX provider.

ingress-nginx was retired upstream (no releases, no security fixes), so K3s's bundled Traefik serves
the migrated Ingresses through its ``kubernetesIngressNGINX`` provider. That provider translates a
fixed set of annotations; the set below is read from the provider's own annotation table in the
Traefik release the tests build (v3.6.12, ``pkg/provider/kubernetes/ingress-nginx/annotations.go``).
Everything else is silently ignored by Traefik — the dangerous case this module exists for: each
annotation is either *supported as is*, *needs a Traefik middleware* (named: the user adds it), or
*unsupported* (raw NGINX configuration: snippets, Lua, ModSecurity), which is a risk to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from k3smig_lib.core.lint import Risk
from k3smig_lib.core.objects import Obj, annotations_of, ref

PREFIX = "nginx.ingress.kubernetes.io/"
Support = Literal["supported", "middleware", "unsupported"]

#: Translated by Traefik's kubernetesIngressNGINX provider (v3.6.12).
SUPPORTED = frozenset({
    "affinity", "auth-realm", "auth-response-headers", "auth-secret", "auth-secret-type", "auth-type", "auth-url",
    "backend-protocol", "cors-allow-credentials", "cors-allow-headers", "cors-allow-methods", "cors-allow-origin",
    "cors-expose-headers", "cors-max-age", "enable-cors", "force-ssl-redirect", "proxy-ssl-name", "proxy-ssl-secret",
    "proxy-ssl-server-name", "proxy-ssl-verify", "service-upstream", "session-cookie-domain", "session-cookie-max-age",
    "session-cookie-name", "session-cookie-path", "session-cookie-samesite", "session-cookie-secure",
    "ssl-passthrough", "ssl-redirect", "use-regex",
})

#: Not translated, but a Traefik middleware (or a TLS option / servers transport) does the same job.
MIDDLEWARE: dict[str, str] = {
    "proxy-body-size": "Buffering (maxRequestBodyBytes)",
    "client-body-buffer-size": "Buffering (memRequestBodyBytes)",
    "proxy-buffering": "Buffering",
    "proxy-buffer-size": "Buffering (memResponseBodyBytes)",
    "limit-rps": "RateLimit (average, burst)",
    "limit-rpm": "RateLimit (average, period: 1m)",
    "limit-burst-multiplier": "RateLimit (burst)",
    "limit-connections": "InFlightReq (amount)",
    "whitelist-source-range": "IPAllowList (sourceRange)",
    "allowlist-source-range": "IPAllowList (sourceRange)",
    "denylist-source-range": "IPAllowList (inverse: no deny list in Traefik; list the allowed ranges)",
    "rewrite-target": "ReplacePathRegex",
    "app-root": "RedirectRegex (^/$ -> app root)",
    "permanent-redirect": "RedirectRegex (permanent: true)",
    "permanent-redirect-code": "RedirectRegex (permanent: true)",
    "temporal-redirect": "RedirectRegex (permanent: false)",
    "from-to-www-redirect": "RedirectRegex",
    "x-forwarded-prefix": "Headers (customRequestHeaders X-Forwarded-Prefix) or StripPrefix",
    "upstream-vhost": "Headers (customRequestHeaders Host)",
    "custom-headers": "Headers (customResponseHeaders)",
    "hsts": "Headers (stsSeconds)",
    "hsts-max-age": "Headers (stsSeconds)",
    "hsts-include-subdomains": "Headers (stsIncludeSubdomains)",
    "proxy-read-timeout": "ServersTransport (forwardingTimeouts.responseHeaderTimeout)",
    "proxy-send-timeout": "ServersTransport (forwardingTimeouts)",
    "proxy-connect-timeout": "ServersTransport (forwardingTimeouts.dialTimeout)",
    "auth-tls-secret": "TLSOption (clientAuth.secretNames)",
    "auth-tls-verify-client": "TLSOption (clientAuth.clientAuthType)",
    "auth-tls-verify-depth": "TLSOption (clientAuth)",
    "ssl-ciphers": "TLSOption (cipherSuites)",
    "ssl-prefer-server-ciphers": "TLSOption (preferServerCipherSuites)",
    "enable-access-log": "AccessLog filters (static configuration)",
    "auth-signin": "ForwardAuth (redirect on 401 in the auth service)",
    "satisfy": "Chain (of the auth middlewares)",
    "default-backend": "Errors (service)",
    "custom-http-errors": "Errors (status, service, query)",
    "canary": "TraefikService (weighted)",
    "canary-weight": "TraefikService (weighted)",
}

#: Raw NGINX configuration or NGINX-only modules: nothing in Traefik reads them.
UNSUPPORTED_PREFIXES = ("configuration-snippet", "server-snippet", "auth-snippet", "stream-snippet",
                        "modsecurity", "enable-modsecurity", "enable-owasp-core-rules", "lua-resty-waf",
                        "mirror-", "upstream-hash-by", "load-balance", "proxy-http-version", "proxy-redirect-",
                        "server-alias", "canary-by-", "global-rate-limit", "enable-opentelemetry",
                        "opentelemetry-", "enable-opentracing", "influxdb-", "proxy-next-upstream",
                        "http2-push-preload", "connection-proxy-header", "ssl-passthrough-proxy-port")


@dataclass(frozen=True)
class Verdict:
    """What Traefik's NGINX provider does with one annotation."""

    annotation: str
    support: Support
    middleware: str
    note: str


def classify(annotation: str) -> Verdict:
    """Classify one ``nginx.ingress.kubernetes.io/*`` annotation (the key, with or without the prefix).

    Examples:
        >>> classify("nginx.ingress.kubernetes.io/ssl-redirect").support
        'supported'
        >>> classify("nginx.ingress.kubernetes.io/proxy-body-size").middleware
        'Buffering (maxRequestBodyBytes)'
        >>> classify("nginx.ingress.kubernetes.io/configuration-snippet").support
        'unsupported'
    """
    name = annotation.removeprefix(PREFIX)
    full = PREFIX + name
    if name in SUPPORTED:
        return Verdict(full, "supported", "", "translated by Traefik's NGINX provider")
    if name in MIDDLEWARE:
        return Verdict(full, "middleware", MIDDLEWARE[name],
                       f"ignored by the NGINX provider: add a Traefik {MIDDLEWARE[name].split(' ')[0]} "
                       "and attach it to the router")
    if name.startswith(UNSUPPORTED_PREFIXES):
        return Verdict(full, "unsupported", "", "raw NGINX configuration or an NGINX-only module: no Traefik "
                       "equivalent; redo the behaviour by hand or keep ingress-nginx")
    return Verdict(full, "unsupported", "", "not translated by Traefik's NGINX provider and no known middleware "
                   "equivalent; check what it does before cutover")


def nginx_annotations(annotations: dict[str, str]) -> list[Verdict]:
    """Verdicts for the ``nginx.ingress.kubernetes.io/*`` keys of one object, sorted by key."""
    return [classify(k) for k in sorted(annotations) if k.startswith(PREFIX)]


def annotation_risks(objects: list[Obj], controller: str) -> list[Risk]:
    """Risk rows for the inventory: each annotation Traefik will not honour as is (none with ingress-nginx).

    ``unsupported`` is a warning (a decision is needed before cutover); ``middleware`` is info (the
    report names the middleware to add).
    """
    if controller != "traefik":
        return []
    risks = []
    for obj in objects:
        if obj.get("kind") != "Ingress":
            continue
        for v in nginx_annotations(annotations_of(obj)):
            if v.support == "unsupported":
                risks.append(Risk("nginx-annotation-unsupported", "warning", ref(obj).id,
                                  f"{v.annotation} is not honoured by Traefik's NGINX provider: {v.note}",
                                  "redo its behaviour with Traefik middlewares, or keep ingress_controller: "
                                  "ingress-nginx (unmaintained) for this Ingress"))
            elif v.support == "middleware":
                risks.append(Risk("nginx-annotation-middleware", "info", ref(obj).id,
                                  f"{v.annotation} is ignored by Traefik's NGINX provider",
                                  f"add a Traefik {v.middleware} middleware and attach it to the router"))
    return risks
