"""The repository pages (apps/repositories/views.py)."""
from django.urls import path

from . import views

app_name = "repositories"
urlpatterns = [
    path("", views.repository_list, name="list"),
    path("<int:pk>/", views.repository_detail, name="detail"),
    path("<int:pk>/check/", views.repository_check, name="check"),
    path("<int:pk>/gitlab-link/", views.gitlab_link, name="gitlab-link"),
    path("<int:pk>/gitlab-unlink/", views.gitlab_unlink, name="gitlab-unlink"),
    path("<int:pk>/tag-rules/new/", views.tag_rule_new, name="tag-rule-new"),
    path("<int:pk>/tag-rules/<int:rule_pk>/", views.tag_rule_edit, name="tag-rule-edit"),
    path("<int:pk>/tag-rules/<int:rule_pk>/delete/", views.tag_rule_delete,
         name="tag-rule-delete"),
]
