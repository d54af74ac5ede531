# syntax=docker/dockerfile:1

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version `tocsin version` and the OpenAPI document's info.version
# show: `make image` passes `git describe --always --dirty`; .git is not in
# the build context (.dockerignore), so it cannot be read here.
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.Version=${VERSION}" -o /out/tocsin ./cmd/tocsin

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tocsin /tocsin
EXPOSE 8080
# The image has no shell and no curl: the binary asks its own /healthz on
# 127.0.0.1 at the port of TOCSIN_HTTP_ADDR (default 8080), 3s at most.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["/tocsin", "healthcheck"]
ENTRYPOINT ["/tocsin"]
CMD ["serve"]
