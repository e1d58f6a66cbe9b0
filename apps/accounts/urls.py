"""The account pages (apps/accounts/views.py): under /account/ the signed-in user's API tokens
and password, under /users/ the user pages of platform admins."""
from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("tokens", views.tokens, name="tokens"),
    path("tokens/revoke", views.revoke, name="revoke"),
    path("password/", views.password_change, name="password"),
]

# include((users_urlpatterns, "users")) in gitops_ui/urls.py
users_urlpatterns = [
    path("", views.user_list, name="list"),
    path("new/", views.user_new, name="new"),
    path("<str:username>/", views.user_detail, name="detail"),
    path("<str:username>/details/", views.user_details, name="details"),
    path("<str:username>/active/", views.user_active, name="active"),
    path("<str:username>/roles/", views.user_roles, name="roles"),
    path("<str:username>/password/", views.user_password, name="password"),
]
