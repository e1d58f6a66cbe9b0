"""The account's pages: its API tokens, listed by their public prefix, created (the token shown
once, on the page that answers the POST, never stored in clear) and revoked; and its password,
changed with the old one. Each change is audited by services.

And the user pages, for platform admins (`accounts.*_user`, apps/accounts/rules.py; anyone
else gets 403 naming what was refused, from apps.core.middleware.RefusalAs403): the list, a new
user, and a user's page with their details, password, deactivation and role per project. Every
change goes through services, which record it in the audit log."""
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from knox.models import AuthToken
from knox.settings import knox_settings

from apps.applications.models import Project, ProjectMember
from apps.core.access import require

from . import services
from .forms import NewUserForm, ProjectRolesForm, UserDetailsForm
from .models import User

USERS_PER_PAGE = 50


def _render(request, new_token=None):
    tokens = AuthToken.objects.filter(user=request.user).order_by("-created")
    return render(request, "accounts/tokens.html", {
        "tokens": tokens, "new_token": new_token, "ttl": knox_settings.TOKEN_TTL})


@never_cache
@login_required
def tokens(request):
    if request.method == "POST":
        _, token = services.create_api_token(request.user)
        # Shown in this answer only (never_cache keeps it out of the browser's cache).
        return _render(request, new_token=token)
    return _render(request)


@login_required
@require_POST
def revoke(request):
    # Only the user's own tokens: another user's prefix is "not found", not "not yours".
    if request.POST.get("all") == "on":
        count = services.revoke_all_api_tokens(request.user)
        messages.success(request, f"Revoked all {count} token{'s' if count != 1 else ''}.")
    else:
        token = AuthToken.objects.filter(user=request.user, token_key=request.POST.get("token_key", "")).first()
        if token is None:
            raise Http404("no such token of yours")
        services.revoke_api_token(token)
        messages.success(request, f"Revoked token {token.token_key}….")
    return redirect("accounts:tokens")


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@never_cache
@login_required
def password_change(request):
    """The signed-in user's own password, with the old one: this session stays signed in, any
    other ends."""
    user = User.objects.get(pk=request.user.pk)  # the model itself, not request's lazy proxy
    form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.set_password(user, form.cleaned_data["new_password1"])
        update_session_auth_hash(request, user)
        messages.success(request, "Password changed. Your other sessions are signed out; "
                                  "API tokens keep working.")
        return redirect("accounts:password")
    return render(request, "accounts/password.html", {"form": form},
                  status=400 if form.errors else 200)


@login_required
def user_list(request):
    require(request.user, "accounts.view_user")
    users = User.objects.order_by("username").prefetch_related(Prefetch(
        "project_roles", queryset=ProjectMember.objects.select_related("project")
        .order_by("project__name")))
    search = request.GET.get("q", "").strip()
    if search:
        users = users.filter(username__icontains=search)
    page = Paginator(users, USERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "accounts/users.html", {
        "page": page, "search": search,
        "may_add": request.user.has_perm("accounts.add_user")})


@login_required
def user_new(request):
    require(request.user, "accounts.add_user")
    form = NewUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.create_user(form.save(commit=False), form.cleaned_data["password1"])
        messages.success(request, f"Created {user.username}. Give them a role in a project below.")
        return redirect("users:detail", username=user.username)
    return render(request, "accounts/user_new.html", {"form": form},
                  status=400 if form.errors else 200)


def _user(username) -> User:
    return get_object_or_404(User, username=username)


def _render_user(request, user, *, details=None, roles=None, password=None, status=200):
    projects = Project.objects.order_by("name")
    current = dict(user.project_roles.values_list("project_id", "role"))
    return render(request, "accounts/user_detail.html", {
        "subject": user,
        "details": details or UserDetailsForm(instance=user),
        "roles": roles or ProjectRolesForm(projects, current),
        "password": password or SetPasswordForm(user),
        "is_self": user.pk == request.user.pk,
    }, status=status)


@login_required
def user_detail(request, username):
    require(request.user, "accounts.view_user")
    return _render_user(request, _user(username))


@login_required
@require_POST
def user_details(request, username):
    require(request.user, "accounts.change_user")
    user = _user(username)
    form = UserDetailsForm(request.POST, instance=user)
    if form.is_valid():
        try:
            services.update_user(form.instance, acting=request.user)
        except services.AccountError as exc:
            form.add_error("is_superuser", str(exc))
        else:
            messages.success(request, f"Saved {user.username}.")
            return redirect("users:detail", username=user.username)
    return _render_user(request, _user(username), details=form, status=400)


@login_required
@require_POST
def user_active(request, username):
    require(request.user, "accounts.change_user")
    user = _user(username)
    active = request.POST.get("active") == "on"
    try:
        services.set_active(user, active, acting=request.user)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{'Reactivated' if active else 'Deactivated'} {user.username}.")
    return redirect("users:detail", username=user.username)


@login_required
@require_POST
def user_roles(request, username):
    require(request.user, "accounts.change_user")
    user = _user(username)
    projects = Project.objects.order_by("name")
    current = dict(user.project_roles.values_list("project_id", "role"))
    form = ProjectRolesForm(projects, current, request.POST)
    if not form.is_valid():
        return _render_user(request, user, roles=form, status=400)
    for project in form.roles():
        require(request.user, "applications.change_project", project)
    changed = services.set_project_roles(user, form.roles())
    messages.success(request, f"Saved the roles of {user.username} in {', '.join(changed)}."
                     if changed else f"No role of {user.username} changed.")
    return redirect("users:detail", username=user.username)


@sensitive_post_parameters("new_password1", "new_password2")
@never_cache
@login_required
@require_POST
def user_password(request, username):
    """A platform admin sets another user's password (their own is changed on the account page,
    with the old one)."""
    require(request.user, "accounts.change_user")
    user = _user(username)
    if user.pk == request.user.pk:
        return redirect("accounts:password")
    form = SetPasswordForm(user, request.POST)
    if not form.is_valid():
        return _render_user(request, user, password=form, status=400)
    services.set_password(user, form.cleaned_data["new_password1"])
    messages.success(request, f"Set a new password for {user.username}; their open sessions "
                              "are signed out.")
    return redirect("users:detail", username=user.username)
