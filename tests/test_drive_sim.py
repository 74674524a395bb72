"""The Drive simulator answers as Drive API v3 does: paging, q, fields, Range, shared
drives, quota errors with Google's bodies, and a token endpoint that checks what it is
given. Plain httpx against it, as any client would talk to Google."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docmill.testkit.drive_model import DriveData, make_xlsx, parse_fields, parse_query, project
from docmill.testkit.drive_sim import DriveSimConfig, SimHandle, serve_in_thread, upload_tree

pytest.importorskip("cryptography")


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with serve_in_thread(DriveSimConfig(seed=1)) as handle:
        yield handle


@pytest.fixture
def api(sim: SimHandle) -> Iterator[httpx.Client]:
    token = sim.access_token()
    with httpx.Client(base_url=f"{sim.api_url}/drive/v3",
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def names(payload: dict[str, Any]) -> list[str]:
    return [f["name"] for f in payload["files"]]


def test_files_list_pages_by_page_size_and_next_page_token(sim: SimHandle, api: httpx.Client) -> None:
    folder = sim.data.add_folder("Many")
    for i in range(250):
        sim.data.add_file(f"{i:03d}.txt", b"x", folder)
    q = f"'{folder}' in parents and trashed = false"
    seen: list[str] = []
    sizes = []
    token = None
    while True:
        params: dict[str, Any] = {"q": q, "pageSize": 100, "fields": "nextPageToken,files(name)"}
        if token:
            params["pageToken"] = token
        page = api.get("/files", params=params).json()
        sizes.append(len(page["files"]))
        seen += names(page)
        token = page.get("nextPageToken")
        if not token:
            break
    assert sizes == [100, 100, 50]
    assert seen == [f"{i:03d}.txt" for i in range(250)]
    # a page token belongs to its query; the default page is 100, the largest 1,000
    first = api.get("/files", params={"q": q}).json()
    assert len(first["files"]) == 100 and "nextPageToken" in first
    other = api.get("/files", params={"q": "trashed = true", "pageToken": first["nextPageToken"]})
    assert other.status_code == 400 and other.json()["error"]["errors"][0]["location"] == "pageToken"
    assert api.get("/files", params={"q": q, "pageSize": 1001}).status_code == 400


def test_q_filters_by_parents_trashed_mime_type_and_name(sim: SimHandle, api: httpx.Client) -> None:
    a, b = sim.data.add_folder("A"), sim.data.add_folder("B")
    sim.data.add_file("one.pdf", b"%PDF", a, "application/pdf")
    gone = sim.data.add_file("gone.pdf", b"%PDF", a, "application/pdf")
    sim.data.trash(gone)
    sim.data.add_native("Doc", "document", ["text"], b)
    sim.data.add_folder("Sub", b)

    def q(text: str) -> list[str]:
        response = api.get("/files", params={"q": text, "fields": "files(name)"})
        assert response.status_code == 200, response.text
        return sorted(names(response.json()))

    assert q(f"'{a}' in parents") == ["gone.pdf", "one.pdf"]
    assert q(f"'{a}' in parents and trashed = false") == ["one.pdf"]
    assert q(f"('{a}' in parents or '{b}' in parents) and trashed = false") == ["Doc", "Sub", "one.pdf"]
    assert q(f"'{b}' in parents and mimeType = 'application/vnd.google-apps.folder'") == ["Sub"]
    assert q(f"'{b}' in parents and mimeType != 'application/vnd.google-apps.folder'") == ["Doc"]
    assert q(f"'{b}' in parents and not name = 'Doc'") == ["Sub"]
    assert q("name contains 'ONE'") == ["one.pdf"]
    bad = api.get("/files", params={"q": "owner = 'me'"})
    assert bad.status_code == 400
    assert bad.json()["error"]["errors"][0] == {
        "domain": "global", "reason": "invalid", "message": bad.json()["error"]["message"],
        "locationType": "parameter", "location": "q",
    }


def test_fields_mask_and_the_default_fields(sim: SimHandle, api: httpx.Client) -> None:
    folder = sim.data.add_folder("F")
    sim.data.add_file("a.bin", b"abc", folder)
    q = f"'{folder}' in parents"
    masked = api.get("/files", params={"q": q, "fields": "files(id,name,md5Checksum,size)"}).json()
    assert masked == {"files": [{"id": masked["files"][0]["id"], "name": "a.bin",
                                 "md5Checksum": "900150983cd24fb0d6963f7d28e17f72", "size": "3"}]}
    bare = api.get("/files", params={"q": q}).json()  # v3 without fields: kind, id, name, mimeType
    assert set(bare["files"][0]) == {"kind", "id", "name", "mimeType"}
    assert parse_fields("nextPageToken,files(id,name)") == {"nextPageToken": None,
                                                             "files": {"id": None, "name": None}}
    assert project({"a": 1, "b": [{"c": 2, "d": 3}]}, {"b": {"c": None}}) == {"b": [{"c": 2}]}


def test_media_honours_range_with_206_and_416_past_the_end(sim: SimHandle, api: httpx.Client) -> None:
    file_id = sim.data.add_file("data.bin", bytes(range(256)) * 4)
    whole = api.get(f"/files/{file_id}", params={"alt": "media"})
    assert whole.status_code == 200 and whole.content == bytes(range(256)) * 4
    part = api.get(f"/files/{file_id}", params={"alt": "media"}, headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part.content == bytes(range(232, 256))
    assert part.headers["content-range"] == "bytes 1000-1023/1024"
    mid = api.get(f"/files/{file_id}", params={"alt": "media"}, headers={"Range": "bytes=10-19"})
    assert mid.status_code == 206 and mid.content == bytes(range(10, 20))
    past = api.get(f"/files/{file_id}", params={"alt": "media"}, headers={"Range": "bytes=1024-"})
    assert past.status_code == 416
    doc = sim.data.add_native("Doc", "document", ["x"])
    native = api.get(f"/files/{doc}", params={"alt": "media"})
    assert native.status_code == 403
    assert native.json()["error"]["errors"][0]["reason"] == "fileNotDownloadable"
    assert sim.stats()["media_by_file"] == {file_id: 4, doc: 1}


def test_exports_and_their_limit(sim: SimHandle, api: httpx.Client) -> None:
    sheet = sim.data.add_native("Budget", "spreadsheet", ["Item\tAmount", "Chairs\t300"])
    xlsx = api.get(f"/files/{sheet}/export",
                   params={"mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    assert xlsx.status_code == 200 and xlsx.content.startswith(b"PK")
    assert api.get(f"/files/{sheet}/export", params={"mimeType": "text/csv"}).text == \
        "Item,Amount\r\nChairs,300\r\n"
    doc = sim.data.add_native("Notes", "document", ["page one", "page two"])
    pdf = api.get(f"/files/{doc}/export", params={"mimeType": "application/pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    unsupported = api.get(f"/files/{doc}/export", params={"mimeType": "image/png"})
    assert unsupported.status_code == 400
    binary = sim.data.add_file("a.bin", b"123")
    assert api.get(f"/files/{binary}/export", params={"mimeType": "application/pdf"}).json()[
        "error"]["errors"][0]["reason"] == "fileNotExportable"
    sim.reconfigure(export_limit=100)
    big = api.get(f"/files/{doc}/export", params={"mimeType": "application/pdf"})
    assert big.status_code == 403
    assert big.json() == {"error": {"errors": [{
        "domain": "global", "reason": "exportSizeLimitExceeded",
        "message": "This file is too large to be exported."}],
        "code": 403, "message": "This file is too large to be exported."}}
    assert make_xlsx([["a"]]).startswith(b"PK")


def test_quota_errors_carry_googles_bodies_and_refused_queries_use_no_quota(sim: SimHandle) -> None:
    sim.reconfigure(queries_per_window=3, window_s=100.0, burst_limit=2, burst_window_s=0.5,
                    retry_after_s=1.0)
    token = sim.access_token("quota@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{sim.api_url}/drive/v3", headers=headers) as api:
        answers = [api.get("/files/root", params={"fields": "id"}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json() == {"error": {"errors": [{
            "domain": "usageLimits", "reason": "rateLimitExceeded", "message": "Rate Limit Exceeded"}],
            "code": 429, "message": "Rate Limit Exceeded"}}
        assert answers[2].headers["retry-after"] == "1"
        time.sleep(0.55)
        assert api.get("/files/root", params={"fields": "id"}).status_code == 200  # third admitted
        time.sleep(0.55)
        over = api.get("/files/root", params={"fields": "id"})
        assert over.status_code == 403
        error = over.json()["error"]
        assert error["code"] == 403 and error["message"].startswith("User Rate Limit Exceeded.")
        assert error["errors"][0]["domain"] == "usageLimits"
        assert error["errors"][0]["reason"] == "userRateLimitExceeded"
        assert "extendedHelp" in error["errors"][0]
    # another user has a quota of their own
    other = sim.access_token("other@example.com")
    ok = httpx.get(f"{sim.api_url}/drive/v3/files/root", params={"fields": "id"},
                   headers={"Authorization": f"Bearer {other}"})
    assert ok.status_code == 200
    stats = sim.stats()
    assert stats["rate_limited_403"] == 1 and stats["rate_limited_429"] == 1
    assert stats["peak_in_window"] == 3


def test_shared_drives_need_the_all_drives_flags(sim: SimHandle, api: httpx.Client) -> None:
    drive = sim.data.add_shared_drive("Legal")
    folder = sim.data.add_folder("Cases", drive)
    file_id = sim.data.add_file("case.txt", b"case", folder)
    assert api.get(f"/files/{file_id}").status_code == 404
    got = api.get(f"/files/{file_id}", params={"supportsAllDrives": "true", "fields": "driveId"})
    assert got.json() == {"driveId": drive}
    q = f"'{folder}' in parents"
    assert api.get("/files", params={"q": q}).json()["files"] == []  # corpora=user
    missing_flag = api.get("/files", params={"q": q, "corpora": "drive", "driveId": drive})
    assert missing_flag.status_code == 400
    listed = api.get("/files", params={"q": q, "corpora": "drive", "driveId": drive,
                                       "includeItemsFromAllDrives": "true",
                                       "supportsAllDrives": "true"})
    assert names(listed.json()) == ["case.txt"]
    drives = api.get("/drives", params={"q": "name = 'Legal'", "fields": "drives(id,name)"})
    assert drives.json() == {"drives": [{"id": drive, "name": "Legal"}]}


def test_token_endpoint_checks_the_jwt_signature_and_bearers_expire(sim: SimHandle) -> None:
    from docmill.sources.gdrive.auth import ServiceAccountKey

    info = sim.service_account("robot@sim.iam.gserviceaccount.com")
    scope = "https://www.googleapis.com/auth/drive.readonly"
    good = ServiceAccountKey(info).assertion(time.time(), sim.token_url, scope)
    sim.reconfigure(token_ttl_s=0.3)
    answer = httpx.post(sim.token_url, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": good})
    assert answer.status_code == 200 and answer.json()["token_type"] == "Bearer"
    token = answer.json()["access_token"]
    url = f"{sim.api_url}/drive/v3/files/root"
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    time.sleep(0.35)
    expired = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401
    assert expired.json()["error"]["errors"][0] == {
        "domain": "global", "reason": "authError", "message": "Invalid Credentials",
        "locationType": "header", "location": "Authorization"}
    # the same account name with another key: the signature does not verify
    forged_info = DriveData(seed=99).add_service_account(info["client_email"], sim.token_url)
    forged = ServiceAccountKey(forged_info).assertion(time.time(), sim.token_url, scope)
    refused = httpx.post(sim.token_url, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged})
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    wrong_aud = ServiceAccountKey(info).assertion(time.time(), "https://elsewhere/token", scope)
    assert httpx.post(sim.token_url, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": wrong_aud,
    }).status_code == 400
    user = sim.authorized_user()
    refreshed = httpx.post(sim.token_url, data={"grant_type": "refresh_token", **{
        k: user[k] for k in ("client_id", "client_secret", "refresh_token")}})
    assert refreshed.status_code == 200
    bad_secret = httpx.post(sim.token_url, data={
        "grant_type": "refresh_token", "client_id": user["client_id"],
        "client_secret": "nope", "refresh_token": user["refresh_token"]})
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    assert httpx.get(url).status_code == 401


def test_query_parser_confines_listings_to_their_parents() -> None:
    _pred, parents = parse_query("'a' in parents and trashed = false")
    assert parents == {"a"}
    _pred, parents = parse_query("('a' in parents or 'b' in parents) and name = 'x'")
    assert parents == {"a", "b"}
    _pred, parents = parse_query("'a' in parents or trashed = true")
    assert parents is None


def test_config_and_stats_over_http(sim: SimHandle) -> None:
    changed = httpx.post(f"{sim.base_url}/_sim/config", content=json.dumps({"error_rate": 0.5}))
    assert changed.json()["config"]["error_rate"] == 0.5
    assert httpx.get(f"{sim.base_url}/_sim/stats").json()["requests"] >= 1


# --- writes: files.create, files.update, multipart and resumable uploads --------------------


def multipart(meta: dict[str, Any], data: bytes, boundary: str = "b0undary") -> tuple[bytes, dict[str, str]]:
    body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
            + json.dumps(meta).encode()
            + f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\n".encode()
            + data + f"\r\n--{boundary}--\r\n".encode())
    return body, {"Content-Type": f"multipart/related; boundary={boundary}"}


@pytest.fixture
def upload(sim: SimHandle, api: httpx.Client) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sim.api_url}/upload/drive/v3",
                      headers={"Authorization": api.headers["Authorization"]}) as client:
        yield client


def test_folders_and_multipart_uploads_land_with_app_properties_q_can_find(
    sim: SimHandle, api: httpx.Client, upload: httpx.Client
) -> None:
    top = sim.data.add_folder("Cases")
    made = api.post("/files", params={"fields": "id,name,mimeType,parents,createdTime"},
                    json={"name": "invoice", "mimeType": "application/vnd.google-apps.folder",
                          "parents": [top]})
    assert made.status_code == 200, made.text
    folder = made.json()
    assert folder["parents"] == [top] and folder["mimeType"].endswith(".folder")
    body, headers = multipart({"name": "a.txt", "parents": [folder["id"]],
                               "appProperties": {"docmill": "archive-1", "docmill-sha256": "ab" * 32}},
                              b"hello\r\n--not-the-boundary\r\n")
    done = upload.post("/files", params={"uploadType": "multipart", "fields": "id,size,sha256Checksum,md5Checksum"},
                       content=body, headers=headers)
    assert done.status_code == 200, done.text
    item = sim.data.get(done.json()["id"])
    assert item is not None and item.content == b"hello\r\n--not-the-boundary\r\n"
    assert item.mime == "text/plain" and item.parent == folder["id"]  # the media part's type
    assert done.json()["size"] == str(len(item.content))
    assert done.json()["sha256Checksum"] == hashlib.sha256(item.content).hexdigest()
    # a second file of the same name: Drive allows it, q tells them apart by appProperties
    body, headers = multipart({"name": "a.txt", "parents": [folder["id"]],
                               "appProperties": {"docmill": "archive-2"}}, b"other")
    assert upload.post("/files", params={"uploadType": "multipart"}, content=body,
                       headers=headers).status_code == 200
    q = (f"'{folder['id']}' in parents and name = 'a.txt' and "
         "appProperties has { key='docmill' and value='archive-1' } and trashed = false")
    found = api.get("/files", params={"q": q, "fields": "files(id,appProperties,createdTime)"}).json()
    assert [f["id"] for f in found["files"]] == [item.id]
    assert found["files"][0]["appProperties"]["docmill-sha256"] == "ab" * 32
    every = api.get("/files", params={"q": f"'{folder['id']}' in parents", "fields": "files(createdTime)"})
    stamps = [f["createdTime"] for f in every.json()["files"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == 2  # creation order, never a tie
    # what the API refuses, with Google's bodies
    too_long = multipart({"name": "x", "appProperties": {"k": "v" * 124}}, b"x")
    refused = upload.post("/files", params={"uploadType": "multipart"}, content=too_long[0], headers=too_long[1])
    assert refused.status_code == 400 and refused.json()["error"]["errors"][0]["reason"] == "invalid"
    two = api.post("/files", json={"name": "x", "parents": [top, folder["id"]]})
    assert two.status_code == 403 and two.json()["error"]["errors"][0]["reason"] == "cannotAddParent"
    nowhere = api.post("/files", json={"name": "x", "parents": ["1NoSuchFolder"]})
    assert nowhere.status_code == 404
    drive = sim.data.add_shared_drive("Legal")
    assert api.post("/files", json={"name": "x", "parents": [drive]}).status_code == 404
    assert api.post("/files", params={"supportsAllDrives": "true"},
                    json={"name": "x", "parents": [drive]}).status_code == 200
    assert sim.stats()["created"] == {"folder": 1, "multipart": 2, "empty": 1}


def test_resumable_uploads_answer_308_with_the_range_held_and_resume_after_a_drop(
    sim: SimHandle, api: httpx.Client, upload: httpx.Client
) -> None:
    top = sim.data.add_folder("Big")
    data = bytes(range(256)) * 4096 * 3  # 3 MiB: chunks of 1 MiB
    started = upload.post("/files", params={"uploadType": "resumable", "fields": "id,size"},
                          json={"name": "big.bin", "parents": [top]},
                          headers={"X-Upload-Content-Length": str(len(data))})
    assert started.status_code == 200
    session = started.headers["location"]
    assert "upload_id=" in session and session.startswith(sim.api_url)
    auth = {"Authorization": api.headers["Authorization"]}
    mib = 1 << 20

    def put(first: int, last: int, total: str = str(len(data)), body: bytes | None = None) -> httpx.Response:
        chunk = data[first : last + 1] if body is None else body
        span = "*" if first < 0 else f"{first}-{last}"
        return httpx.put(session, content=chunk, headers={**auth, "Content-Range": f"bytes {span}/{total}"})

    assert put(-1, -1, body=b"").status_code == 308  # nothing yet: no Range header
    assert "range" not in put(-1, -1, body=b"").headers
    one = put(0, mib - 1)
    assert one.status_code == 308 and one.headers["range"] == f"bytes=0-{mib - 1}"
    odd = put(mib, mib + 1000)  # not a multiple of 256 KiB, and not the last
    assert odd.status_code == 400
    assert put(2 * mib, 3 * mib - 1).status_code == 400  # past what arrived
    # the connection drops during the second chunk: half of it (whole granules) is kept
    sim.reconfigure(drop_upload_every=2)  # the 2nd chunk taken (the refused ones do not count)
    with pytest.raises(httpx.TransportError):
        put(mib, 2 * mib - 1)
    held = put(-1, -1, body=b"")
    assert held.status_code == 308 and held.headers["range"] == f"bytes=0-{mib + mib // 2 - 1}"
    sim.reconfigure(drop_upload_every=0)
    again = put(mib, 2 * mib - 1)  # the overlap is ignored
    assert again.headers["range"] == f"bytes=0-{2 * mib - 1}"
    assert sim.data.walk(top) == []  # nothing until the last byte
    last = put(2 * mib, 3 * mib - 1)
    assert last.status_code == 200 and last.json()["size"] == str(len(data))
    [(name, item)] = sim.data.walk(top)
    assert name == "big.bin" and item.content == data
    assert put(-1, -1, body=b"").json()["id"] == item.id  # asked after the end: the file
    stats = sim.stats()
    assert (stats["sessions"], stats["dropped_uploads"], stats["status_queries"]) == (1, 1, 3)
    # a session of unknown length, cancelled: no file; an unknown session: 404
    other = upload.post("/files", params={"uploadType": "resumable"}, json={"name": "c", "parents": [top]})
    url = other.headers["location"]
    assert httpx.put(url, content=data[:mib], headers={**auth, "Content-Range": f"bytes 0-{mib - 1}/*"}).status_code == 308
    assert httpx.delete(url, headers=auth).status_code == 499
    assert httpx.put(url, content=b"", headers={**auth, "Content-Range": "bytes */*"}).status_code == 404
    assert [n for n, _ in sim.data.walk(top)] == ["big.bin"]


def test_update_moves_between_parents_renames_replaces_bytes_and_trashes(
    sim: SimHandle, api: httpx.Client, upload: httpx.Client
) -> None:
    inbox, filed = sim.data.add_folder("Inbox"), sim.data.add_folder("Filed")
    file_id = sim.data.add_file("scan.pdf", b"%PDF old", inbox)
    version = sim.data.get(file_id).version  # type: ignore[union-attr]
    second = api.patch(f"/files/{file_id}", params={"addParents": filed}, json={})
    assert second.status_code == 403 and second.json()["error"]["errors"][0]["reason"] == "cannotAddParent"
    moved = api.patch(f"/files/{file_id}", params={"addParents": filed, "removeParents": inbox,
                                                  "fields": "parents,name,appProperties,version"},
                      json={"name": "letter.pdf", "appProperties": {"docmill": "m-1"}})
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"parents": [filed], "name": "letter.pdf",
                            "appProperties": {"docmill": "m-1"}, "version": str(version + 1)}
    assert [n for n, _ in sim.data.walk(inbox)] == [] and [n for n, _ in sim.data.walk(filed)] == ["letter.pdf"]
    body, headers = multipart({"appProperties": {"docmill-sha256": "cd" * 32}}, b"%PDF new")
    replaced = upload.patch(f"/files/{file_id}", params={"uploadType": "multipart", "fields": "id,size"},
                            content=body, headers=headers)
    assert replaced.json() == {"id": file_id, "size": "8"}
    item = sim.data.get(file_id)
    assert item is not None and item.content == b"%PDF new"
    assert item.app_properties == {"docmill": "m-1", "docmill-sha256": "cd" * 32}  # merged
    assert api.patch(f"/files/{file_id}", json={"trashed": True}).status_code == 200
    assert sim.data.walk(filed) == []
    stats = sim.stats()
    assert (stats["moved"], stats["replaced"]) == (1, 1)


def test_uploads_are_queries_under_the_same_quota(sim: SimHandle, upload: httpx.Client) -> None:
    sim.reconfigure(queries_per_window=2, window_s=100.0)
    body, headers = multipart({"name": "a"}, b"a")
    answers = [upload.post("/files", params={"uploadType": "multipart"}, content=body, headers=headers)
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 403]
    assert answers[2].json()["error"]["errors"][0]["reason"] == "userRateLimitExceeded"
    assert [n for n, _ in sim.data.walk("root")] == ["a", "a"]


def test_a_local_folder_served_as_a_drive_folder_and_listed_by_the_tree_endpoint(
    sim: SimHandle, tmp_path: Path
) -> None:
    (tmp_path / "pile" / "sub").mkdir(parents=True)
    (tmp_path / "pile" / "a.pdf").write_bytes(b"%PDF-1.4 a")
    (tmp_path / "pile" / "sub" / "b.txt").write_bytes(b"b")
    top, count = upload_tree(sim.data, tmp_path / "pile")
    assert count == 2 and sim.data.get(top).name == "pile"  # type: ignore[union-attr]
    tree = httpx.get(f"{sim.base_url}/_sim/tree", params={"folder": top}).json()["items"]
    assert [(p, size) for p, size, _id in tree] == [("a.pdf", 10), ("sub/", -1), ("sub/b.txt", 1)]
    assert sim.data.get(tree[0][2]).mime == "application/pdf"  # type: ignore[union-attr]
